package meshkey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

// counting is a deterministic "random" source: 0, 1, 2, ...
type counting struct{ n byte }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

func fixedKey(t *testing.T) Key {
	t.Helper()
	k, err := Generate(&counting{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStringParse(t *testing.T) {
	k := fixedKey(t)
	const want = "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQT-CQKR-MFYY-DENB-WHA5-DYPQ"
	if got := k.String(); got != want {
		t.Fatalf("String = %s, want %s", got, want)
	}
	for _, text := range []string{want, strings.ToLower(want), strings.ReplaceAll(want, "-", ""),
		" " + strings.ReplaceAll(want, "-", " ") + "\n"} {
		got, err := Parse(text)
		if err != nil || got != k {
			t.Fatalf("Parse(%q) = %v, %v", text, got, err)
		}
	}
	for _, bad := range []string{"", want[:len(want)-1], want + "A", strings.Replace(want, "A", "1", 1),
		strings.Replace(want, "A", "=", 1), Key{}.String()} {
		if _, err := Parse(bad); !errors.Is(err, ErrKey) {
			t.Errorf("Parse(%q) = %v, want ErrKey", bad, err)
		}
	}
}

// hkdfRef is RFC 5869 written out, to check Derive against.
func hkdfRef(secret, salt []byte, info string, n int) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write(secret)
	prk := m.Sum(nil)
	var out, prev []byte
	for i := byte(1); len(out) < n; i++ {
		m := hmac.New(sha256.New, prk)
		m.Write(prev)
		m.Write([]byte(info))
		m.Write([]byte{i})
		prev = m.Sum(nil)
		out = append(out, prev...)
	}
	return out[:n]
}

func TestDeriveKnownAnswers(t *testing.T) {
	k := fixedKey(t)
	d := k.Derive("game")
	// Known answers: any change here breaks every keyed mesh.
	const (
		wantPSK = "7516e23ffeac432aee6eef0779d2379f4fa06bc95d29f9de833b5a9c0ece0dd8"
		wantMAC = "e82d7144348084e0993e6c5e0608972e1ba6d7e57eea89b7f8607af0833baada"
		wantID  = "4a7927ad7d8a1481"
	)
	salt := []byte("lanmesh v1game")
	if got, ref := d.PSK[:], hkdfRef(k[:], salt, "lanmesh psk", 32); !bytes.Equal(got, ref) {
		t.Fatalf("PSK %x, reference %x", got, ref)
	}
	if got, ref := d.BeaconMAC[:], hkdfRef(k[:], salt, "lanmesh beacon mac", 32); !bytes.Equal(got, ref) {
		t.Fatalf("MAC key %x, reference %x", got, ref)
	}
	if got, ref := d.ID[:], hkdfRef(k[:], salt, "lanmesh key id", 8); !bytes.Equal(got, ref) {
		t.Fatalf("ID %x, reference %x", got, ref)
	}
	if hex.EncodeToString(d.PSK[:]) != wantPSK || hex.EncodeToString(d.BeaconMAC[:]) != wantMAC || d.ID.String() != wantID {
		t.Fatalf("known answers changed: psk %x mac %x id %s", d.PSK, d.BeaconMAC, d.ID)
	}
	if o := k.Derive("other"); o.ID == d.ID || o.PSK == d.PSK || o.BeaconMAC == d.BeaconMAC {
		t.Fatal("another mesh name gave the same sub-keys")
	}
	if d.PSK == d.BeaconMAC {
		t.Fatal("sub-keys are not independent")
	}
}

func TestPassphraseKnownAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id with 64 MiB")
	}
	k := FromPassphrase("correct horse battery staple", "game")
	const want = "P5MN-DSLB-BXRS-HTKO-HHKX-S5IT-RGZC-PFUJ-Y43S-DNT5-LTKX-NOFW-7GWA"
	if k.String() != want {
		t.Fatalf("FromPassphrase = %s, want %s", k, want)
	}
	if FromPassphrase("correct horse battery staple", "other") == k {
		t.Fatal("the mesh name does not salt the passphrase")
	}
}

func TestKeyringSet(t *testing.T) {
	a := fixedKey(t)
	b, _ := Generate(&counting{n: 100})
	var none Keyring
	if none.Keyed() || none.Derive("m") != nil {
		t.Fatal("the zero Keyring is keyed")
	}
	if err := (Keyring{Accepted: []Key{a}}).Validate(); err == nil {
		t.Fatal("accepted keys without a primary validated")
	}
	if err := (Keyring{Primary: a, Accepted: []Key{{}}}).Validate(); err == nil {
		t.Fatal("a zero accepted key validated")
	}
	s := Keyring{Primary: a, Accepted: []Key{b, a}}.Derive("m")
	if len(s.Entries) != 2 || s.Primary().ID != a.Derive("m").ID {
		t.Fatalf("set = %+v", s.IDs())
	}
	if d, ok := s.Lookup(b.Derive("m").ID); !ok || d.PSK != b.Derive("m").PSK {
		t.Fatal("accepted key not found by id")
	}
	if _, ok := s.Lookup(b.Derive("n").ID); ok {
		t.Fatal("found a key of another mesh")
	}
	var nilSet *Set
	if _, ok := nilSet.Lookup(ID{}); ok || nilSet.IDs() != nil {
		t.Fatal("nil set is not empty")
	}
}

func TestGenerateShortSource(t *testing.T) {
	if _, err := Generate(strings.NewReader("short")); err == nil {
		t.Fatal("Generate accepted a short source")
	}
	if _, err := Generate(bytes.NewReader(make([]byte, 32))); err == nil {
		t.Fatal("Generate accepted zeros")
	}
}

func TestLoad(t *testing.T) {
	a := fixedKey(t)
	b, _ := Generate(&counting{n: 50})
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == EnvVar {
				return v
			}
			return ""
		}
	}
	file := t.TempDir() + "/mesh.key"
	if err := os.WriteFile(file, []byte("# the mesh key\n"+a.String()+"\n\n"+b.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		key, file string
		env       string
		want      Keyring
		fail      bool
	}{
		{"none", "", "", "", Keyring{}, false},
		{"flag", a.String(), "", b.String(), Keyring{Primary: a}, false},
		{"env", "", "", b.String(), Keyring{Primary: b}, false},
		{"file", "", file, b.String(), Keyring{Primary: a, Accepted: []Key{b}}, false},
		{"both", a.String(), file, "", Keyring{}, true},
		{"bad", "nope", "", "", Keyring{}, true},
		{"missing file", "", file + ".not", "", Keyring{}, true},
	} {
		got, err := Load(c.key, c.file, env(c.env))
		if (err != nil) != c.fail || got.Primary != c.want.Primary || len(got.Accepted) != len(c.want.Accepted) {
			t.Errorf("%s: Load = %+v, %v", c.name, got, err)
		}
	}
}
