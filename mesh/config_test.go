package mesh

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if good.Link.Silence > 3*time.Second {
		t.Errorf("default Silence %v is over 3 s", good.Link.Silence)
	}
	if DefaultConfig().NodeID == good.NodeID {
		t.Error("two DefaultConfigs share a NodeID")
	}
	other := DefaultConfig()
	if other.hello().InstanceID != good.hello().InstanceID {
		t.Error("the instance id changed within one process")
	}
	for name, edit := range map[string]func(c *Config){
		"nil node":        func(c *Config) { c.NodeID = uuid.Nil },
		"empty mesh":      func(c *Config) { c.Mesh = "" },
		"long name":       func(c *Config) { c.Name = string(make([]byte, 256)) },
		"name utf8":       func(c *Config) { c.Name = "\xff" },
		"codec":           func(c *Config) { c.Codec = "xml" },
		"handshake":       func(c *Config) { c.Link.HandshakeTimeout = 0 },
		"ping >= silence": func(c *Config) { c.Link.PingInterval = c.Link.Silence },
		"silence":         func(c *Config) { c.Link.Silence = -1 },
		"write timeout":   func(c *Config) { c.Link.WriteTimeout = 0 },
		"close timeout":   func(c *Config) { c.Link.CloseTimeout = 0 },
		"send buffer":     func(c *Config) { c.Link.SendBufferLimit = 10 },
		"receive queue":   func(c *Config) { c.ReceiveQueueLimit = 0 },
	} {
		c := DefaultConfig()
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}
