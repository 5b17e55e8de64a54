package ifaddr

import "strings"

// Kind is what an interface looks like from its name and flags: a guess,
// good enough to explain to a person why peers on it are not the LAN.
type Kind uint8

const (
	KindLAN       Kind = iota // an ordinary Ethernet or Wi-Fi interface
	KindLoopback              // this machine only
	KindContainer             // a bridge or veth of Docker, Podman, LXC, libvirt, Kubernetes or WSL/Hyper-V
	KindVPN                   // a tunnel: WireGuard, OpenVPN, Tailscale, ZeroTier, PPP, or any point-to-point link
)

func (k Kind) String() string {
	switch k {
	case KindLoopback:
		return "loopback"
	case KindContainer:
		return "container bridge"
	case KindVPN:
		return "VPN"
	}
	return "LAN"
}

// Name prefixes of interfaces made by container and VM runtimes, and of
// tunnels. Case is ignored; Windows names (vEthernet (WSL)) have spaces.
var (
	containerPrefixes = []string{"docker", "br-", "veth", "virbr", "vnet", "cni", "flannel", "cali", "weave",
		"lxcbr", "lxdbr", "podman", "vethernet", "vmnet", "vboxnet", "kube", "cilium"}
	vpnPrefixes = []string{"tun", "tap", "wg", "utun", "ppp", "tailscale", "zt", "ipsec", "nordlynx",
		"proton", "mullvad", "openvpn", "gpd", "cscotun", "ztun"}
)

// KindOf guesses what an interface is for from its name and flags.
func KindOf(it Interface) Kind {
	name := strings.ToLower(it.Name)
	switch {
	case it.Loopback:
		return KindLoopback
	case hasAnyPrefix(name, vpnPrefixes) || it.PointToPoint:
		return KindVPN
	case hasAnyPrefix(name, containerPrefixes):
		return KindContainer
	}
	return KindLAN
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Unusable says in a few words why discovery cannot beacon on an
// interface ("down", "no broadcast", "no IPv4 address"), or "" when it
// can. Multicast is not required (broadcast suffices); see its flag.
func Unusable(it Interface) string {
	switch {
	case !it.Up:
		return "down"
	case it.Loopback:
		return "loopback"
	case len(it.Prefixes) == 0:
		return "no IPv4 address"
	case !it.Broadcast:
		return "no broadcast"
	}
	for _, p := range it.Prefixes {
		if _, ok := DirectedBroadcast(p); ok {
			return ""
		}
	}
	return "no broadcast address (a /31 or /32)"
}
