package mcp.pii_redaction_test

import data.mcp.pii_redaction
import rego.v1

sample := {"result": {
	"structuredContent": {
		"customer": {"id": 42, "name": "Ada", "email": "ada@example.com", "phone": "+44 20 7946 0000"},
		"orders": [{"id": 1, "home_address": "1 Lovelace Rd"}, {"id": 2}],
		"ssn": "078-05-1120",
		"total": 99.5,
	},
	"content": [
		{"type": "text", "text": "Contact ada@example.com, card 4111 1111 1111 1111."},
		{"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
	],
}}

test_fields_removed_without_scope if {
	r := pii_redaction.result with input as object.union(sample, {"client": {"scopes": ["tools:call"]}})
	r.structuredContent == {
		"customer": {"id": 42, "name": "Ada"},
		"orders": [{"id": 1}, {"id": 2}],
		"total": 99.5,
	}
}

test_text_masked if {
	r := pii_redaction.result with input as object.union(sample, {"client": {"scopes": []}})
	r.content[0].text == "Contact [email], card [card]."
	r.content[1] == sample.result.content[1]
}

test_removed_fields_listed if {
	pii_redaction.removed_fields == {"customer/email", "customer/phone", "orders/0/home_address", "ssn"} with input as object.union(sample, {"client": {"scopes": []}})
}

test_scope_keeps_everything if {
	r := pii_redaction.result with input as object.union(sample, {"client": {"scopes": ["pii:read"]}})
	r == sample.result
	pii_redaction.removed_fields == set() with input as object.union(sample, {"client": {"scopes": ["pii:read"]}})
}
