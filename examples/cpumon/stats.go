package main

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/sensors"

	"github.com/lanmesh/lanmesh/message"
)

// Stats is what each machine shares every interval. Percentages are 0 to 100; sizes are bytes; Temp is 0
// where the machine reports no temperature.
type Stats struct {
	Host        string  `json:"host" msgpack:"host"`
	CPU         float32 `json:"cpu" msgpack:"cpu"`
	Load1       float32 `json:"load1" msgpack:"load1"`
	Load5       float32 `json:"load5" msgpack:"load5"`
	Load15      float32 `json:"load15" msgpack:"load15"`
	MemPercent  float32 `json:"mem_percent" msgpack:"mem_percent"`
	MemTotal    uint64  `json:"mem_total" msgpack:"mem_total"`
	SwapPercent float32 `json:"swap_percent" msgpack:"swap_percent"`
	SwapTotal   uint64  `json:"swap_total" msgpack:"swap_total"`
	Temp        float32 `json:"temp" msgpack:"temp"`
}

func init() { message.MustRegister[Stats](message.Default, 0x31, "CPUStats") }

// maxHost keeps a Stats within a binary frame, with room to spare.
const maxHost = 64

// The binary form: the host name (a length byte, then UTF-8), then CPU,
// Load1, Load5, Load15, MemPercent as float32, MemTotal as uint64,
// SwapPercent as float32, SwapTotal as uint64, Temp as float32; all
// big-endian. 45 bytes and the name.
const statsFixed = 4*5 + 8 + 4 + 8 + 4

// AppendBinary appends the binary form.
func (s Stats) AppendBinary(b []byte) ([]byte, error) {
	host := truncate(s.Host, maxHost)
	b = append(b, byte(len(host)))
	b = append(b, host...)
	for _, f := range []float32{s.CPU, s.Load1, s.Load5, s.Load15, s.MemPercent} {
		b = binary.BigEndian.AppendUint32(b, math.Float32bits(f))
	}
	b = binary.BigEndian.AppendUint64(b, s.MemTotal)
	b = binary.BigEndian.AppendUint32(b, math.Float32bits(s.SwapPercent))
	b = binary.BigEndian.AppendUint64(b, s.SwapTotal)
	return binary.BigEndian.AppendUint32(b, math.Float32bits(s.Temp)), nil
}

var errStats = errors.New("CPUStats: malformed")

// UnmarshalBinary reads what AppendBinary wrote, and nothing more.
func (s *Stats) UnmarshalBinary(p []byte) error {
	if len(p) < 1 || len(p) != 1+int(p[0])+statsFixed || !utf8.Valid(p[1:1+p[0]]) {
		return errStats
	}
	s.Host = string(p[1 : 1+p[0]])
	p = p[1+p[0]:]
	f32 := func() float32 {
		v := math.Float32frombits(binary.BigEndian.Uint32(p))
		p = p[4:]
		return v
	}
	u64 := func() uint64 {
		v := binary.BigEndian.Uint64(p)
		p = p[8:]
		return v
	}
	s.CPU, s.Load1, s.Load5, s.Load15, s.MemPercent = f32(), f32(), f32(), f32(), f32()
	s.MemTotal = u64()
	s.SwapPercent = f32()
	s.SwapTotal = u64()
	s.Temp = f32()
	return nil
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sample reads this machine's figures. Whatever the machine does not
// report (load on some systems, swap, temperature) stays 0: a monitor
// shows what it can rather than fail.
func sample(ctx context.Context, host string) Stats {
	s := Stats{Host: truncate(host, maxHost)}
	// Interval 0: the CPU time since the previous call, so sampling never
	// blocks the loop.
	if p, err := cpu.PercentWithContext(ctx, 0, false); err == nil && len(p) > 0 {
		s.CPU = float32(p[0])
	}
	if l, err := load.AvgWithContext(ctx); err == nil {
		s.Load1, s.Load5, s.Load15 = float32(l.Load1), float32(l.Load5), float32(l.Load15)
	}
	if v, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		s.MemPercent, s.MemTotal = float32(v.UsedPercent), v.Total
	}
	if v, err := mem.SwapMemoryWithContext(ctx); err == nil {
		s.SwapPercent, s.SwapTotal = float32(v.UsedPercent), v.Total
	}
	// Some sensors may fail while others answer (the error is then a
	// warning list): use what came.
	temps, _ := sensors.TemperaturesWithContext(ctx)
	s.Temp = float32(cpuTemp(temps))
	return s
}

// cpuTemp picks the CPU's temperature from the sensors: the hottest of
// those that look like a CPU's, else the hottest of all; 0 if none.
func cpuTemp(temps []sensors.TemperatureStat) float64 {
	var cpuMax, anyMax float64
	for _, t := range temps {
		if t.Temperature <= 0 || t.Temperature > 150 {
			continue // unplugged or nonsense
		}
		anyMax = max(anyMax, t.Temperature)
		k := strings.ToLower(t.SensorKey)
		for _, hint := range []string{"cpu", "core", "package", "k10temp", "tctl", "tdie", "coretemp", "soc"} {
			if strings.Contains(k, hint) {
				cpuMax = max(cpuMax, t.Temperature)
				break
			}
		}
	}
	if cpuMax > 0 {
		return cpuMax
	}
	return anyMax
}
