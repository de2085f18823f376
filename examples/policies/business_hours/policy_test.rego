package mcp.business_hours_test

import data.mcp.business_hours
import rego.v1

contractor := {"subject": {"sub": "carol", "employment": "contractor"}, "server": "github"}

employee := {"subject": {"sub": "dave", "employment": "employee"}, "server": "github"}

# 2025-06-04 is a Wednesday. Berlin is UTC+2 in June.
ts(rfc3339) := time.parse_rfc3339_ns(rfc3339)

test_contractor_allowed_on_wednesday_morning if {
	business_hours.allow with input as contractor with time.now_ns as ts("2025-06-04T07:30:00Z") # 09:30 Berlin
}

test_contractor_denied_before_opening if {
	not business_hours.allow with input as contractor with time.now_ns as ts("2025-06-04T06:59:59Z") # 08:59 Berlin
}

test_contractor_denied_at_closing if {
	not business_hours.allow with input as contractor with time.now_ns as ts("2025-06-04T16:00:00Z") # 18:00 Berlin
}

test_contractor_denied_on_saturday if {
	not business_hours.allow with input as contractor with time.now_ns as ts("2025-06-07T10:00:00Z")
	business_hours.reason == "outside business hours for contractors" with input as contractor
		with time.now_ns as ts("2025-06-07T10:00:00Z")
}

test_timezone_matters_late_utc_friday if {
	# Friday 23:30 UTC is already Saturday 01:30 in Berlin.
	not business_hours.allow with input as contractor with time.now_ns as ts("2025-06-06T23:30:00Z")
}

test_winter_offset if {
	# In January Berlin is UTC+1: 08:30 UTC is 09:30 local.
	business_hours.allow with input as contractor with time.now_ns as ts("2025-01-15T08:30:00Z")
}

test_employee_any_time if {
	business_hours.allow with input as employee with time.now_ns as ts("2025-06-07T03:00:00Z")
}

test_status_server_always_open if {
	business_hours.allow with input as object.union(contractor, {"server": "status"})
		with time.now_ns as ts("2025-06-08T03:00:00Z")
}

test_on_call_contractor if {
	business_hours.allow with input as {"subject": {"employment": "contractor", "on_call": true}, "server": "pagerduty"}
		with time.now_ns as ts("2025-06-08T03:00:00Z")
}
