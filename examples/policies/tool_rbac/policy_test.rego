package mcp.tool_rbac_test

import data.mcp.tool_rbac
import rego.v1

engineer := {"sub": "alice", "roles": ["engineer"]}

call(server, name, args) := {"subject": engineer, "server": server, "tool": {"name": name, "arguments": args}}

test_engineer_reads_project_file if {
	tool_rbac.allow with input as call("filesystem", "read_file", {"path": "/srv/projects/app/README.md"})
}

test_engineer_cannot_read_outside_prefix if {
	not tool_rbac.allow with input as call("filesystem", "read_file", {"path": "/etc/passwd"})
}

test_dot_dot_cannot_escape_prefix if {
	not tool_rbac.allow with input as call("filesystem", "read_file", {"path": "/srv/projects/../../etc/shadow"})
}

test_dot_dot_refused_even_inside_prefix if {
	not tool_rbac.allow with input as call("filesystem", "read_file", {"path": "/srv/projects/app/../lib/x.go"})
}

test_dot_and_double_slash_normalized if {
	tool_rbac.allow with input as call("filesystem", "read_file", {"path": "/srv//projects/./app/x.go"})
}

test_relative_path_denied if {
	req := call("filesystem", "read_file", {"path": "srv/projects/x"})
	not tool_rbac.allow with input as req
	count(tool_rbac.violations) == 2 with input as req
}

test_engineer_cannot_write if {
	not tool_rbac.allow with input as call("filesystem", "write_file", {"path": "/srv/projects/app/x"})
}

test_github_wildcard if {
	tool_rbac.allow with input as call("github", "create_pull_request", {"title": "x"})
}

test_glob_does_not_cross_separator if {
	not tool_rbac.allow with input as {"subject": {"roles": ["support"]}, "server": "jira", "tool": {"name": "search_issues/../admin", "arguments": {}}}
	tool_rbac.allow with input as {"subject": {"roles": ["support"]}, "server": "jira", "tool": {"name": "search_issues", "arguments": {}}}
}

test_writer_two_prefixes if {
	writer := {"sub": "bob", "roles": ["writer"]}
	tool_rbac.allow with input as {"subject": writer, "server": "filesystem", "tool": {"name": "write_file", "arguments": {"path": "/srv/projects/handbook/onboarding.md"}}}
	not tool_rbac.allow with input as {"subject": writer, "server": "filesystem", "tool": {"name": "write_file", "arguments": {"path": "/srv/projects/app/main.go"}}}
}

test_prefix_is_not_a_string_prefix_trick if {
	# "/srv/projects-evil" shares a string prefix with "/srv/projects" but not the directory prefix.
	not tool_rbac.allow with input as call("filesystem", "read_file", {"path": "/srv/projects-evil/x"})
}
