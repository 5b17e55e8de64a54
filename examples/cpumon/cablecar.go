package main

import (
	"errors"
	"math"
	"strings"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

// cable_car's cpu monitor (its examples/cpu_mon.py, cable_car 1.0.1) is a
// BroadcastConnector on its own ports: it sends the ASCII bytes "BROADCAST"
// to UDP 8226 every 3 s, dials TCP 8227 of every host it hears, listens on
// TCP 8227, and sends JSON lines, one message each:
//
//	["MsgStats",{"host":"box","cpu_percent":3.1,"load_avg":[0.4,0.3,0.2],"memory_percent":41.2,"memory_total":16644251648,"swap_percent":0.0,"swap_total":2147479552,"temp":47.0}]
//
// ("temp" only where the machine has a "coretemp" sensor). Its receiver
// raises KeyError for a message class it does not know, which ends the
// program: a cable_car peer must be sent MsgStats and nothing else.
const (
	cableCarBeaconPort = 8226
	cableCarPort       = 8227
	cableCarInterval   = 3 // seconds between its broadcasts
)

// pyStats is cpu_mon.py's MsgStats, field for field, in its order.
type pyStats struct {
	Host          string    `json:"host" msgpack:"host"`
	CPUPercent    float64   `json:"cpu_percent" msgpack:"cpu_percent"`
	LoadAvg       []float64 `json:"load_avg" msgpack:"load_avg"`
	MemoryPercent float64   `json:"memory_percent" msgpack:"memory_percent"`
	MemoryTotal   uint64    `json:"memory_total" msgpack:"memory_total"`
	SwapPercent   float64   `json:"swap_percent" msgpack:"swap_percent"`
	SwapTotal     uint64    `json:"swap_total" msgpack:"swap_total"`
	Temp          *float64  `json:"temp,omitempty" msgpack:"temp,omitempty"`
}

// The code is lanmesh's own (cable_car's JSON names types, not codes); it
// only travels on cable_car links, which use the JSON codec.
func init() { message.MustRegister[pyStats](message.Default, 0x32, "MsgStats") }

// errJSONOnly: MsgStats has no binary form, on purpose (an optional field
// and a list): the binary codec refuses it by name instead of deriving one.
var errJSONOnly = errors.New("MsgStats travels only on cable_car links, in JSON")

// AppendBinary and UnmarshalBinary refuse: see errJSONOnly.
func (*pyStats) AppendBinary([]byte) ([]byte, error) { return nil, errJSONOnly }
func (*pyStats) UnmarshalBinary([]byte) error        { return errJSONOnly }

// finite keeps a figure JSON can carry (a NaN would fail the encoding).
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// toPy turns this machine's Stats into cpu_mon.py's message.
func toPy(s Stats) *pyStats {
	p := &pyStats{Host: s.Host, CPUPercent: finite(round(s.CPU)),
		LoadAvg:       []float64{finite(round(s.Load1)), finite(round(s.Load5)), finite(round(s.Load15))},
		MemoryPercent: finite(round(s.MemPercent)), MemoryTotal: s.MemTotal,
		SwapPercent: finite(round(s.SwapPercent)), SwapTotal: s.SwapTotal}
	if s.Temp > 0 {
		t := finite(round(s.Temp))
		p.Temp = &t
	}
	return p
}

// round gives a float32 figure the two decimals Python would print, not
// float32's binary tail (12.5 rather than 12.500000953674316).
func round(v float32) float64 { return math.Round(float64(v)*100) / 100 }

// fromPy turns cpu_mon.py's message into Stats. Whatever is missing or out
// of range reads 0.
func fromPy(p *pyStats) Stats {
	s := Stats{Host: truncate(p.Host, maxHost), CPU: f32(p.CPUPercent), MemPercent: f32(p.MemoryPercent),
		MemTotal: p.MemoryTotal, SwapPercent: f32(p.SwapPercent), SwapTotal: p.SwapTotal}
	for i, v := range p.LoadAvg[:min(len(p.LoadAvg), 3)] {
		*[]*float32{&s.Load1, &s.Load5, &s.Load15}[i] = f32(v)
	}
	if p.Temp != nil {
		s.Temp = f32(*p.Temp)
	}
	return s
}

func f32(v float64) float32 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > math.MaxFloat32 {
		return 0
	}
	return float32(v)
}

// isCableCar reports whether a peer is a cable_car program: the mesh links
// them with no discovery behind them, under the name "cablecar@IP". (A
// lanmesh peer that took such a name would only be sent MsgStats.)
func isCableCar(p mesh.PeerInfo) bool {
	return p.Via == 0 && strings.HasPrefix(p.Name, "cablecar@")
}
