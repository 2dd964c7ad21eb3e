package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The user and groups checks of the suite (checks.go has the types they share).

func (d *deriver) userChecks() {
	m := d.m
	otherUID := uint32(0)
	if m.UID == 0 {
		otherUID = 1000
	}
	d.add(&check{
		Name:        "uid",
		Setting:     SettingUser,
		Description: "the process runs as the uid runAsUser (or the image, or the policy) gives",
		Expected:    strconv.Itoa(int(m.UID)),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := fmt.Sprintf("uid=%d euid=%d", rep.UID, rep.EUID)
			if rep.UID != int(m.UID) || rep.EUID != int(m.UID) {
				return failf(got, "expected uid %d", m.UID)
			}
			return pass(got)
		},
		brk: &breaker{key: "uid", desc: fmt.Sprintf("the bundle runs uid %d", otherUID), model: func(m *model) { m.UID = otherUID }},
	})
	otherGID := uint32(0)
	if m.GID == 0 {
		otherGID = 1000
	}
	d.add(&check{
		Name:        "gid",
		Setting:     SettingUser,
		Description: "the primary group is runAsGroup, or the user's group in the image's /etc/passwd",
		Expected:    strconv.Itoa(int(m.GID)),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := fmt.Sprintf("gid=%d egid=%d", rep.GID, rep.EGID)
			if rep.GID != int(m.GID) || rep.EGID != int(m.GID) {
				return failf(got, "expected gid %d", m.GID)
			}
			return pass(got)
		},
		brk: &breaker{key: "gid", desc: fmt.Sprintf("the bundle runs gid %d", otherGID), model: func(m *model) { m.GID = otherGID }},
	})
	nonRoot := d.c.sc.RunAsNonRoot != nil && *d.c.sc.RunAsNonRoot
	if d.c.policy != nil && d.c.policy.p.RunAsNonRoot && d.c.policy.p.Mode != "audit" {
		nonRoot = true
	}
	if nonRoot {
		d.add(&check{
			Name:        "runAsNonRoot",
			Setting:     SettingUser,
			Description: "runAsNonRoot: the process is not root",
			Expected:    "uid != 0",
			eval: func(o *observation) verdict {
				rep, v := o.started()
				if v != nil {
					return *v
				}
				got := fmt.Sprintf("uid=%d", rep.UID)
				if rep.UID == 0 || rep.EUID == 0 {
					return failf(got, "the process runs as root")
				}
				return pass(got)
			},
			brk: &breaker{key: "uid0", desc: "the bundle runs uid 0", model: func(m *model) { m.UID = 0 }},
		})
	}
}

func (d *deriver) groupChecks() {
	m := d.m
	want := m.Groups
	d.add(&check{
		Name:        "groups",
		Setting:     SettingGroups,
		Description: "supplementary groups are the primary gid, the image's memberships (Merge), supplementalGroups and fsGroup",
		Expected:    idList(want),
		eval: func(o *observation) verdict {
			rep, v := o.started()
			if v != nil {
				return *v
			}
			got := make([]uint32, 0, len(rep.Groups))
			for _, g := range rep.Groups {
				got = append(got, uint32(g))
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, want) {
				return failf(idList(got), "expected groups %s", idList(want))
			}
			return pass(idList(got))
		},
		brk: &breaker{key: "groups", desc: "the bundle drops the supplementary groups",
			model: func(m *model) {
				if slices.Equal(m.Groups, []uint32{m.GID}) {
					m.Groups = append(m.Groups, 4242)
					return
				}
				m.Groups = []uint32{m.GID}
			}},
	})
}

func idList(ids []uint32) string {
	s := make([]string, len(ids))
	for i, v := range ids {
		s[i] = strconv.Itoa(int(v))
	}
	return "[" + strings.Join(s, " ") + "]"
}
