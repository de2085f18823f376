# Business hours for contractors: contractors may use MCP servers only Monday to Friday,
# 09:00-18:00 in their organisation's time zone; employees are not restricted. Some servers
# are allowed around the clock (e.g. the status page), and on-call contractors get an exception.
#
# input:
#   subject: {"sub": "carol", "employment": "contractor", "on_call": false}
#   server: "github"
# The clock comes from time.now_ns(); tests replace it with `with time.now_ns as ...`.
package mcp.business_hours

import rego.v1

timezone := "Europe/Berlin"

open_hour := 9

close_hour := 18

working_days := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

always_open_servers := {"status"}

now := [time.now_ns(), timezone]

default allow := false

allow if input.subject.employment != "contractor"

allow if input.server in always_open_servers

allow if input.subject.on_call == true

allow if within_business_hours

within_business_hours if {
	time.weekday(now) in working_days
	[hour, _, _] := time.clock(now)
	hour >= open_hour
	hour < close_hour
}

reason := "outside business hours for contractors" if not allow
