//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netlinkError is a negative errno returned in a netlink ack: the kernel's
// verdict on the request, as opposed to a failure of the socket itself.
type netlinkError struct {
	msgType uint16
	errno   syscall.Errno
}

func (e *netlinkError) Error() string {
	return fmt.Sprintf("netlink message type %d rejected: %v", e.msgType, e.errno)
}

func (e *netlinkError) Unwrap() error { return e.errno }

const netlinkTimeout = 5 * time.Second

// netlinkRequest sends one message with NLM_F_ACK on a fresh socket of the
// given protocol and returns the ack's verdict (nil for success).
func netlinkRequest(proto int, msgType uint16, payload []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("socket(AF_NETLINK, %d): %w", proto, err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("set netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind netlink socket: %w", err)
	}

	const seq = 1
	msg := make([]byte, unix.SizeofNlMsghdr+nlAlign(len(payload)))
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:4], uint32(unix.SizeofNlMsghdr+len(payload)))
	ne.PutUint16(msg[4:6], msgType)
	ne.PutUint16(msg[6:8], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:12], seq)
	copy(msg[unix.SizeofNlMsghdr:], payload)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		// Audit rejects some senders at send time rather than in an ack.
		if e, ok := errnoOf(err); ok && (e == unix.EPERM || e == unix.ECONNREFUSED) {
			return &netlinkError{msgType: msgType, errno: e}
		}
		return fmt.Errorf("send netlink message: %w", err)
	}

	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("receive netlink ack: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(ne.Uint32(b[0:4]))
			typ := ne.Uint16(b[4:6])
			mseq := ne.Uint32(b[8:12])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("malformed netlink reply (len %d of %d)", l, len(b))
			}
			if typ == unix.NLMSG_ERROR && mseq == seq {
				if l < unix.SizeofNlMsghdr+4 {
					return fmt.Errorf("short netlink ack")
				}
				code := int32(ne.Uint32(b[unix.SizeofNlMsghdr : unix.SizeofNlMsghdr+4]))
				if code == 0 {
					return nil
				}
				return &netlinkError{msgType: msgType, errno: syscall.Errno(-code)}
			}
			b = b[min(nlAlign(l), len(b)):]
		}
	}
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// setLinkMTU sends RTM_NEWLINK for the interface with only IFLA_MTU set;
// ifi_flags and ifi_change stay zero so the link's flags are not touched.
func setLinkMTU(index, mtu int) error {
	ne := binary.NativeEndian
	p := make([]byte, unix.SizeofIfInfomsg+unix.SizeofRtAttr+4)
	p[0] = unix.AF_UNSPEC
	ne.PutUint32(p[4:8], uint32(int32(index)))
	a := p[unix.SizeofIfInfomsg:]
	ne.PutUint16(a[0:2], unix.SizeofRtAttr+4)
	ne.PutUint16(a[2:4], unix.IFLA_MTU)
	ne.PutUint32(a[4:8], uint32(mtu))
	return netlinkRequest(unix.NETLINK_ROUTE, unix.RTM_NEWLINK, p)
}

// sendAuditUser sends a NUL-terminated AUDIT_USER text message.
func sendAuditUser(text string) error {
	return netlinkRequest(unix.NETLINK_AUDIT, unix.AUDIT_USER, append([]byte(text), 0))
}
