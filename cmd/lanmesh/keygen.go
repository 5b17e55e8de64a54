package main

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/lanmesh/lanmesh/meshkey"
)

const keygenSummary = `Print a new mesh key, or with --passphrase the key stretched from a
passphrase for one mesh name. Give it to every node of the mesh:
--key-file FILE (lanmesh keygen > mesh.key), --key TEXT or ` + meshkey.EnvVar + `=TEXT.
Nodes with a key authenticate their beacons and encrypt their links.`

// runKeygen is "lanmesh keygen": it prints a new random mesh key, or with
// --passphrase the key stretched from a passphrase for one mesh name.
//
//	lanmesh keygen > mesh.key
//	lanmesh --key-file mesh.key ...   (or --key TEXT, or LANMESH_KEY=TEXT)
func runKeygen(ctx context.Context, args []string, std stdio) error {
	stdout := std.out
	fs := newFlags("keygen", keygenSummary, std.err)
	pass := fs.String("passphrase", "", "derive the key from this `passphrase` (Argon2id) instead of at random; weak against offline guessing")
	mesh := fs.String("mesh", "lanmesh", "the mesh `name` a passphrase is salted with")
	if err := parse(fs, args); err != nil {
		return err
	}
	var k meshkey.Key
	if *pass != "" {
		fmt.Fprintln(std.err, "warning: anyone who captures one beacon of the mesh can guess a passphrase offline; prefer a random key")
		k = meshkey.FromPassphrase(*pass, *mesh)
	} else {
		var err error
		if k, err = meshkey.Generate(rand.Reader); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(stdout, k)
	return err
}

// keyFromFlags is the keyring of the common flags --key and --key-file and
// of the environment variable LANMESH_KEY (see meshkey.Load).
func keyFromFlags(key, keyFile string, getenv func(string) string) (meshkey.Keyring, error) {
	return meshkey.Load(key, keyFile, getenv)
}
