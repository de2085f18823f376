package mcp.hipaa_test

import data.mcp.hipaa
import rego.v1

now := time.parse_rfc3339_ns("2025-06-01T12:00:00Z")

trained := time.parse_rfc3339_ns("2025-01-10T00:00:00Z")

good := {
	"subject": {"sub": "dr-who", "roles": ["clinician"], "hipaa_training_ns": trained},
	"server": "ehr",
	"tool": {"name": "get_patient_record", "arguments": {"patient_id": "p1", "fields": ["allergies", "medications"]}},
	"context": {"purpose_of_use": "treatment", "tls": true},
}

test_compliant_treatment_request if {
	d := hipaa.decision with input as good with time.now_ns as now
	d == {"allow": true, "violations": set(), "review_required": false}
}

test_minimum_necessary if {
	req := json.patch(good, [{"op": "add", "path": "/tool/arguments/fields/-", "value": "insurance"}])
	d := hipaa.decision with input as req with time.now_ns as now
	not d.allow
	d.violations == {`fields ["insurance"] exceed the minimum necessary for treatment`}
}

test_no_baa if {
	d := hipaa.decision with input as object.union(good, {"server": "billing", "context": {"purpose_of_use": "payment", "tls": true}, "tool": {"arguments": {"fields": ["insurance"]}}})
		with time.now_ns as now
	d.violations == {"server has no signed business associate agreement"}
}

test_expired_training if {
	d := hipaa.decision with input as good with time.now_ns as time.add_date(trained, 1, 0, 1)
	"HIPAA training missing or expired" in d.violations
}

test_plaintext_and_missing_purpose if {
	req := json.patch(good, [{"op": "replace", "path": "/context", "value": {"tls": false}}])
	d := hipaa.decision with input as req with time.now_ns as now
	d.violations == {"transport is not encrypted", "no permitted purpose of use declared"}
}

test_break_glass_allowed_but_reviewed if {
	req := object.union(good, {"context": {"tls": true, "break_glass": true}, "tool": {"arguments": {"fields": ["notes", "insurance"]}}})
	d := hipaa.decision with input as req with time.now_ns as now
	d.allow
	d.review_required
}

test_non_phi_server_unaffected if {
	d := hipaa.decision with input as {"server": "github", "subject": {}, "tool": {"name": "search"}, "context": {}}
	d.allow
}
