package codec_test

import (
	"fmt"
	"reflect"

	"github.com/lanmesh/lanmesh/codec"
)

type Pos struct{ X, Y float32 }

type Player struct {
	ID    uint16
	Alive bool
	Name  string
	At    Pos
	Hp    [2]int8
}

// A struct of plain fields needs no code of its own to travel in binary
// frames: its form is derived once, from its definition.
func ExampleDeriveBinary() {
	form, err := codec.DeriveBinary(reflect.TypeFor[Player]())
	if err != nil {
		panic(err)
	}
	p := &Player{ID: 7, Alive: true, Name: "bob", At: Pos{1, -2}, Hp: [2]int8{100, -1}}
	payload, _ := form.Append(nil, p)
	fmt.Printf("% x\n", payload)

	var back Player
	if err := form.Unmarshal(payload, &back); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", back)

	type Bad struct{ Scores map[string]int }
	_, err = codec.DeriveBinary(reflect.TypeFor[Bad]())
	fmt.Println(err)
	// Output:
	// 00 07 01 03 62 6f 62 3f 80 00 00 c0 00 00 00 64 ff
	// {ID:7 Alive:true Name:bob At:{X:1 Y:-2} Hp:[100 -1]}
	// codec: message type has no binary form: Bad.Scores is a map: give Bad AppendBinary/UnmarshalBinary, or use the msgpack codec
}
