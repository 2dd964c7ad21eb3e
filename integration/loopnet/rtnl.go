package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// rtnl is a route netlink socket: just the four requests loopnet makes
// (rtnetlink(7); message layouts from linux/if_link.h, linux/veth.h and
// linux/if_addr.h). The socket belongs to the network namespace of the
// thread that opened it.
type rtnl struct {
	fd  int
	seq uint32
}

func dialRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open a route netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind the route netlink socket: %w", err)
	}
	return &rtnl{fd: fd}, nil
}

func (h *rtnl) close() { unix.Close(h.fd) }

// attr is one rtattr; nested attributes are attrs in body.
func attr(typ uint16, body []byte) []byte {
	b := make([]byte, unix.SizeofRtAttr, unix.SizeofRtAttr+len(body)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(unix.SizeofRtAttr+len(body)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// do sends one request and waits for its acknowledgement.
func (h *rtnl) do(typ uint16, flags uint16, payload []byte) error {
	h.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(payload))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(payload)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], h.seq)
	msg = append(msg, payload...)
	if err := unix.Sendto(h.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send netlink request: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(h.fd, buf, 0)
		if err != nil {
			return fmt.Errorf("read netlink reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parse netlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != h.seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("short netlink error message")
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				return syscall.Errno(-errno)
			}
			return nil
		}
	}
}

// addVethPair creates name with its peer peer, both in this namespace.
func (h *rtnl) addVethPair(name, peer string) error {
	peerInfo := append(ifinfomsg(0, 0, 0), attr(unix.IFLA_IFNAME, cstr(peer))...)
	const vethInfoPeer = 1 // VETH_INFO_PEER, linux/veth.h
	info := append(attr(unix.IFLA_INFO_KIND, []byte("veth")),
		attr(unix.IFLA_INFO_DATA, attr(vethInfoPeer, peerInfo))...)
	payload := append(ifinfomsg(0, 0, 0), attr(unix.IFLA_IFNAME, cstr(name))...)
	payload = append(payload, attr(unix.IFLA_LINKINFO, info)...)
	return h.do(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, payload)
}

func (h *rtnl) setUp(index int32) error {
	return h.do(unix.RTM_NEWLINK, 0, ifinfomsg(index, unix.IFF_UP, unix.IFF_UP))
}

func (h *rtnl) delLink(index int32) error {
	return h.do(unix.RTM_DELLINK, 0, ifinfomsg(index, 0, 0))
}

func (h *rtnl) addAddr(index int32, ip net.IP, prefix int) error {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	b[1] = byte(prefix)
	b[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	b = append(b, attr(unix.IFA_LOCAL, ip.To4())...)
	b = append(b, attr(unix.IFA_ADDRESS, ip.To4())...)
	return h.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b)
}

// linkIndex is the index of the interface named name in the namespace of
// the calling thread, or 0 when there is none. net.InterfaceByName opens
// its own netlink socket on this thread, which is in the Pod's namespace.
func (h *rtnl) linkIndex(name string) (int32, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		// The net package's errNoSuchInterface, inside an OpError.
		if strings.Contains(err.Error(), "no such network interface") {
			return 0, nil
		}
		return 0, fmt.Errorf("look up %s: %w", name, err)
	}
	return int32(ifc.Index), nil
}

func (h *rtnl) linkMAC(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("look up %s: %w", name, err)
	}
	return ifc.HardwareAddr.String(), nil
}
