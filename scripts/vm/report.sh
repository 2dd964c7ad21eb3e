#!/usr/bin/env bash
# Combines the VM's per-row reports into one report (run.sh calls it):
#
#   OUT/summary.md         verdict, matrix table, check-by-row table, boot and timing figures
#   OUT/report.tap         TAP 14, one subtest per matrix row (suite and vm-checks nested)
#   OUT/report.junit.xml   every row's test suites, named "<row>: <suite>"
#   OUT/report.json        VM facts, rows (each with its report.json and vm_checks), checks by row
#   OUT/checks.tsv         row, check ID, status, full TAP name (one line per check)
#
# Reads OUT/vm.env (run.sh) and OUT/guest/ (the guest's results). Prints a
# short summary (summary.md has the full check table). Exit status 1 when
# a gating row failed, when a gating row did not run and pass every check
# matching $SECRUN_VM_REQUIRE (default "apparmor": the AppArmor checks must
# run for real, not skip), when the guest's runner failed, or when the guest
# lacked AppArmor or cgroup v2; 0 otherwise.
set -euo pipefail
out=$1
g=$out/guest
require=${SECRUN_VM_REQUIRE:-apparmor}
problems=()
if [ ! -f "$g/matrix.tsv" ]; then
	problems+=("the guest wrote no matrix.tsv")
	mkdir -p "$g"
	: >"$g/matrix.tsv"
fi

val() { sed -n "s/^$1=//p" "$out/vm.env" | head -n1; }
# list N: the first N lines of stdin joined with ", ", then "(and M more)".
list() { awk -v n="$1" '{ if (NR <= n) printf "%s%s", (NR > 1 ? ", " : ""), $0 } END { if (NR > n) printf " (and %d more)", NR - n }'; }

# checks.tsv from each row's TAP (top-level lines only). The check ID is
# the name's first word, so that rows whose descriptions differ (secrun's
# expectation against a bare runtime's) still line up.
: >"$out/checks.tsv"
# tap_checks ROW PREFIX FILE
tap_checks() {
	awk -v row="$1" -v prefix="$2" '
		/^(not )?ok( |$)/ {
			st = ($1 == "not") ? "fail" : "pass"
			s = $0
			sub(/^(not )?ok *[0-9]* *(- )?/, "", s)
			dir = ""
			if ((i = index(s, " # ")) > 0) { dir = substr(s, i + 3); s = substr(s, 1, i - 1) }
			else if (substr(s, 1, 2) == "# ") { dir = substr(s, 3); s = "" }
			if (toupper(dir) ~ /^SKIP/) st = "skip"
			else if (toupper(dir) ~ /^TODO/) st = "todo"
			if (s == "") s = "#" NR
			gsub(/\t/, " ", s)
			id = s
			sub(/ .*/, "", id)
			printf "%s\t%s%s\t%s\t%s%s\n", row, prefix, id, st, prefix, s
		}' "$3"
}
while IFS=$'\t' read -r row _; do
	[ -f "$g/$row/report.tap" ] && tap_checks "$row" "" "$g/$row/report.tap" >>"$out/checks.tsv"
	[ -f "$g/$row/vm-checks/report.tap" ] && tap_checks "$row" vm-checks/ "$g/$row/vm-checks/report.tap" >>"$out/checks.tsv"
done <"$g/matrix.tsv"

while IFS=$'\t' read -r row gate rc secs suite rt; do
	[ "$gate" = gating ] || continue
	nfail=$(awk -F'\t' -v r="$row" '$1 == r && $3 == "fail"' "$out/checks.tsv" | wc -l)
	failed=$(awk -F'\t' -v r="$row" '$1 == r && $3 == "fail" { print $2 }' "$out/checks.tsv" | list 5)
	[ "$rc" = 0 ] || problems+=("$row: the suite exited $rc${failed:+; $nfail checks failed: $failed}")
	[ -s "$g/$row/report.tap" ] || problems+=("$row: the suite wrote no report.tap; guest/$row/suite.log ends: $(tail -n 1 "$g/$row/suite.log" 2>/dev/null | cut -c1-200)")
	n=$(awk -F'\t' -v r="$row" -v re="$require" '$1 == r && $4 ~ re' "$out/checks.tsv" | wc -l)
	bad=$(awk -F'\t' -v r="$row" -v re="$require" '$1 == r && $4 ~ re && $3 != "pass" { print $2 " (" $3 ")" }' "$out/checks.tsv" | list 5)
	if [ "$n" = 0 ]; then
		problems+=("$row: no check matching /$require/ ran")
	elif [ -n "$bad" ]; then
		problems+=("$row: checks matching /$require/ must run and pass: $bad")
	fi
done <"$g/matrix.tsv"
grep -q "$(printf '\tgating\t')" "$g/matrix.tsv" || problems+=("no gating row ran")
[ "$(val guest_status)" = 0 ] || problems+=("the guest's runner exited $(val guest_status) (see guest/guest-run.log)")
[ "$(val cgroup_fs)" = cgroup2 ] || problems+=("the guest's /sys/fs/cgroup is '$(val cgroup_fs)', not cgroup2")
[ "$(val apparmor_enabled)" = Y ] || problems+=("the guest kernel does not have AppArmor enabled")
status=0
[ ${#problems[@]} = 0 ] || status=1

rows=$(cut -f1 "$g/matrix.tsv" | tr '\n' ' ')
accel_note=$(val accel_note)
count() { awk -F'\t' -v r="$1" -v s="$2" '$1 == r && $3 == s' "$out/checks.tsv" | wc -l; }

# check_table FILTER: the check-by-row table; FILTER "all", or "gating-bad"
# for only the checks that did not pass in some gating row.
check_table() {
	awk -F'\t' -v rows="$rows" -v filter="$1" -v gating="$(awk -F'\t' '$2 == "gating" { printf "%s ", $1 }' "$g/matrix.tsv")" '
		BEGIN { nr = split(rows, r, " "); split(gating, gl, " "); for (i in gl) isg[gl[i]] = 1 }
		!($2 in seen) { seen[$2] = 1; order[++n] = $2 }
		{ st[$1 SUBSEP $2] = ($3 == "fail" ? "FAIL" : $3); if (isg[$1] && $3 != "pass") bad[$2] = 1 }
		END {
			h = "| check |"; l = "|---|"
			for (i = 1; i <= nr; i++) { h = h " " r[i] " |"; l = l "---|" }
			print h; print l
			for (k = 1; k <= n; k++) {
				if (filter != "all" && !(order[k] in bad)) continue
				id = order[k]; gsub(/\|/, "\\|", id)
				s = "| " id " |"
				for (i = 1; i <= nr; i++) s = s " " ((r[i] SUBSEP order[k]) in st ? st[r[i] SUBSEP order[k]] : "-") " |"
				print s
			}
		}' "$out/checks.tsv"
}

head_md() {
	echo "# secrun conformance in a VM"
	echo
	if [ $status = 0 ]; then echo "**PASS**: every gating row passed; checks matching \`/$require/\` ran and passed."; else echo "**FAIL**"; fi
	for p in ${problems[@]+"${problems[@]}"}; do echo "- $p"; done
	echo
	echo "| row | runtime | gating | exit | pass | fail | skip | seconds | suite |"
	echo "|---|---|---|---|---|---|---|---|---|"
	while IFS=$'\t' read -r row gate rc secs suite rt; do
		echo "| $row | \`${rt//\/payload\//}\` | $([ "$gate" = gating ] && echo yes || echo "no (comparison)") | $rc | $(count "$row" pass) | $(count "$row" fail) | $(count "$row" skip) | $secs | $suite |"
	done <"$g/matrix.tsv"
	echo
}

tail_md() {
	echo "VM: $(val kernel) under $(val accel) ($(val cpus) CPUs, $(val mem_mib) MiB), $(val qemu)${accel_note:+ ($accel_note)}"
	echo "Guest: lsm=$(val lsm); AppArmor enabled=$(val apparmor_enabled); /sys/fs/cgroup is $(val cgroup_fs) (controllers: $(val cgroup_controllers))"
	echo
	echo "| step | seconds |"
	echo "|---|---|"
	echo "| image (cache key $(val image)) | $(val image_seconds) |"
	echo "| payload disk | $(val payload_seconds) |"
	echo "| boot: QEMU start to guest userspace | $(val boot_seconds) |"
	echo "| boot: guest kernel uptime at userspace | $(val boot_uptime) |"
	echo "| VM: QEMU start to power-off | $(val vm_seconds) |"
	echo "| total | $(val total_seconds) |"
	echo
	echo "Console log: console.log; per-row reports: guest/<row>/report.{tap,junit.xml,json}; guest packages: packages.txt"
}

{
	head_md
	echo "Checks by row (pass / FAIL / skip / - not run):"
	echo
	check_table all
	echo
	tail_md
} >"$out/summary.md"

# report.tap: TAP 14 with one subtest per row.
{
	echo "TAP version 14"
	n=0
	while IFS=$'\t' read -r row gate rc secs suite rt; do
		n=$((n + 1))
		echo "# Subtest: $row"
		# subtap FILE: the row's TAP, indented one level.
		subtap() {
			if [ -f "$1" ]; then
				grep -v '^TAP version' "$1" | sed 's/^/    /'
			else
				echo "    1..1"
				echo "    not ok 1 - the suite wrote no report.tap"
			fi
		}
		if [ -d "$g/$row/vm-checks" ]; then
			# Two nested subtests: the suite, then the VM's checks.
			echo "    # Subtest: suite"
			subtap "$g/$row/report.tap" | sed 's/^/    /'
			if grep -q '^not ok' "$g/$row/report.tap" 2>/dev/null || [ ! -f "$g/$row/report.tap" ]; then echo "    not ok 1 - suite"; else echo "    ok 1 - suite"; fi
			echo "    # Subtest: vm-checks"
			subtap "$g/$row/vm-checks/report.tap" | sed 's/^/    /'
			if grep -q '^not ok' "$g/$row/vm-checks/report.tap" 2>/dev/null || [ ! -f "$g/$row/vm-checks/report.tap" ]; then echo "    not ok 2 - vm-checks"; else echo "    ok 2 - vm-checks"; fi
			echo "    1..2"
		else
			subtap "$g/$row/report.tap"
		fi
		if [ "$rc" = 0 ]; then r="ok"; else r="not ok"; fi
		if [ "$gate" = gating ]; then echo "$r $n - $row"; else echo "$r $n - $row # TODO comparison row, not gating (exit $rc)"; fi
	done <"$g/matrix.tsv"
	echo "1..$n"
} >"$out/report.tap"

# report.junit.xml: the rows' suites side by side.
{
	echo '<?xml version="1.0" encoding="UTF-8"?>'
	echo "<testsuites name=\"secrun conformance (VM, $(val accel))\">"
	while IFS=$'\t' read -r row gate rc secs suite rt; do
		if [ -s "$g/$row/report.junit.xml" ]; then
			sed -e 's/<?xml[^>]*?>//' -e 's/<testsuites[^>]*>//g' -e 's#</testsuites>##g' \
				-e "s/\(<testsuite [^>]*name=\"\)/\1$row: /g" "$g/$row/report.junit.xml" | grep -v '^[[:space:]]*$'
		else
			echo "  <testsuite name=\"$row\" tests=\"1\" failures=\"1\"><testcase classname=\"$row\" name=\"report\"><failure message=\"the suite wrote no report.junit.xml (exit $rc)\"/></testcase></testsuite>"
		fi
		if [ -s "$g/$row/vm-checks/report.junit.xml" ]; then
			sed -e 's/<?xml[^>]*?>//' -e 's/<testsuites[^>]*>//g' -e 's#</testsuites>##g' \
				-e "s/\(<testsuite [^>]*name=\"\)[^\"]*/\1$row: vm-checks/g" "$g/$row/vm-checks/report.junit.xml" | grep -v '^[[:space:]]*$'
		fi
	done <"$g/matrix.tsv"
	echo "</testsuites>"
} >"$out/report.junit.xml"

# report.json
json_esc() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\010\013-\037' | tr '\t\n' '  '; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | json_esc)"; }
# embed FILE: a JSON document as is, or null.
embed() { if [ -s "$1" ] && [ "$(head -c1 "$1")" = "{" ]; then tr -d '\n' <"$1"; else printf null; fi; }
num() { if [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; then echo "$1"; else echo null; fi; }
{
	printf '{"status":%s,"pass":%s,' "$status" "$([ $status = 0 ] && echo true || echo false)"
	printf '"problems":['
	sep=
	for p in ${problems[@]+"${problems[@]}"}; do printf '%s%s' "$sep" "$(json_str "$p")"; sep=,; done
	printf '],"require":%s,' "$(json_str "$require")"
	printf '"vm":{"accel":%s,"accel_note":%s,"qemu":%s,"kernel":%s,"cpus":%s,"mem_mib":%s,"lsm":%s,"apparmor_enabled":%s,"cgroup":%s,"image":%s,' \
		"$(json_str "$(val accel)")" "$(json_str "$accel_note")" "$(json_str "$(val qemu)")" "$(json_str "$(val kernel)")" "$(num "$(val cpus)")" "$(num "$(val mem_mib)")" \
		"$(json_str "$(val lsm)")" "$([ "$(val apparmor_enabled)" = Y ] && echo true || echo false)" "$(json_str "$(val cgroup_fs)")" "$(json_str "$(val image)")"
	printf '"seconds":{"image":%s,"payload":%s,"boot":%s,"boot_kernel_uptime":%s,"vm":%s,"total":%s},"console_log":"console.log"},' \
		"$(num "$(val image_seconds)")" "$(num "$(val payload_seconds)")" "$(num "$(val boot_seconds)")" "$(num "$(val boot_uptime)")" "$(num "$(val vm_seconds)")" "$(num "$(val total_seconds)")"
	printf '"rows":['
	sep=
	while IFS=$'\t' read -r row gate rc secs suite rt; do
		printf '%s{"name":%s,"runtime":%s,"gating":%s,"exit":%s,"seconds":%s,"suite":%s,"pass":%s,"fail":%s,"skip":%s,"report":' \
			"$sep" "$(json_str "$row")" "$(json_str "$rt")" "$([ "$gate" = gating ] && echo true || echo false)" "$(num "$rc")" "$(num "$secs")" \
			"$(json_str "$suite")" "$(count "$row" pass)" "$(count "$row" fail)" "$(count "$row" skip)"
		embed "$g/$row/report.json"
		printf ',"vm_checks":'
		embed "$g/$row/vm-checks/report.json"
		printf '}'
		sep=,
	done <"$g/matrix.tsv"
	printf '],"checks":['
	# id \t row \t status, JSON-escaped, grouped by id in first-seen order.
	awk -F'\t' '{ print $2 "\t" $1 "\t" $3 }' "$out/checks.tsv" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk -F'\t' '
		!($1 in seen) { seen[$1] = 1; order[++n] = $1 }
		{ res[$1] = res[$1] (res[$1] == "" ? "" : ",") "\"" $2 "\":\"" $3 "\"" }
		END { for (k = 1; k <= n; k++) printf "%s{\"name\":\"%s\",\"results\":{%s}}", (k > 1 ? "," : ""), order[k], res[order[k]] }'
	printf ']}\n'
} >"$out/report.json"

# Printed: the verdict, the rows, the checks that did not pass in a gating
# row (at most 40), the figures.
{
	head_md
	check_table gating-bad >"$out/.bad.md"
	bad=$(($(wc -l <"$out/.bad.md") - 2))
	if [ "$bad" -gt 0 ]; then
		echo "Checks that did not pass in a gating row ($bad; summary.md has every check):"
		echo
		sed -n '1,42p' "$out/.bad.md"
		if [ "$bad" -gt 40 ]; then echo "| ... $((bad - 40)) more | |"; fi
		echo
	fi
	rm -f "$out/.bad.md"
	tail_md
}
exit $status
