package meshkey

import (
	"fmt"
	"os"
	"strings"
)

// EnvVar is the environment variable that Load reads a key from.
const EnvVar = "LANMESH_KEY"

// Load returns the keyring a program was given, for commands with --key
// and --key-file flags: key is a key's text (String's form), keyFile names
// a file of keys, one per line (the first is the primary, the others are
// accepted; blank lines and lines starting with # are skipped). When both
// are empty it reads the key text from getenv(EnvVar); when that is empty
// too it returns the zero Keyring (an unkeyed node). Giving both key and
// keyFile is an error.
func Load(key, keyFile string, getenv func(string) string) (Keyring, error) {
	switch {
	case key != "" && keyFile != "":
		return Keyring{}, fmt.Errorf("meshkey: give a key or a key file, not both")
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return Keyring{}, fmt.Errorf("meshkey: %w", err)
		}
		var r Keyring
		for n, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := Parse(line)
			if err != nil {
				return Keyring{}, fmt.Errorf("%s line %d: %w", keyFile, n+1, err)
			}
			if r.Primary.IsZero() {
				r.Primary = k
			} else {
				r.Accepted = append(r.Accepted, k)
			}
		}
		if !r.Keyed() {
			return Keyring{}, fmt.Errorf("%w: %s holds no key", ErrKey, keyFile)
		}
		return r, nil
	case key == "" && getenv != nil:
		key = getenv(EnvVar)
	}
	if key == "" {
		return Keyring{}, nil
	}
	k, err := Parse(key)
	if err != nil {
		return Keyring{}, err
	}
	return Keyring{Primary: k}, nil
}
