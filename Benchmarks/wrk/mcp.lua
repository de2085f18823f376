-- wrk script for Gatehouse's load benchmark (scripts/bench).
--   wrk -t1 -c16 -d5s -s Benchmarks/wrk/mcp.lua URL -- MODE ARGBYTES [SESSIONS_FILE] [METHOD]
-- MODE: stateless (2026-07-28: MCP-Protocol-Version, Mcp-Method, Mcp-Name headers and
--       params._meta) or session (2025-11-25: Mcp-Session-Id from SESSIONS_FILE, one id per
--       line, rotated request by request).
-- ARGBYTES: approximate size of params.arguments in bytes (0 -> {}).
-- METHOD: tools/call (default) or tools/list.
-- Every request has a new id, and arguments carry that id too, so no answer can be cached.
-- Prints one machine-readable BENCH_RESULT line at the end (latencies in microseconds).

local mode = "stateless"
local argbytes = 0
local method = "tools/call"
local sessions = {}
local counter = 0
local pad = nil
local headers = nil

function setup(thread)
  thread_index = (thread_index or 0) + 1
  thread:set("tid", thread_index)
end

function init(args)
  mode = args[1] or "stateless"
  argbytes = tonumber(args[2] or "0") or 0
  local file = args[3]
  method = args[4] or "tools/call"
  if file ~= nil and file ~= "" and file ~= "-" then
    for line in io.lines(file) do
      if #line > 0 then sessions[#sessions + 1] = line end
    end
  end
  if mode == "session" and #sessions == 0 then
    error("session mode needs a sessions file with at least one Mcp-Session-Id")
  end
  -- {"n":1234567890123,"text":"<pad>"}: 22 bytes of framing plus up to 13 digits.
  if argbytes > 0 then pad = string.rep("x", math.max(1, argbytes - 35)) end
  counter = (tid or 1) * 1000000000
  headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
  -- BENCH_AUTHORIZATION (e.g. "Bearer ghk_...") is sent on every request when set.
  local authorization = os.getenv("BENCH_AUTHORIZATION")
  if authorization ~= nil and authorization ~= "" then headers["Authorization"] = authorization end
  if mode == "stateless" then
    headers["MCP-Protocol-Version"] = "2026-07-28"
    headers["Mcp-Method"] = method
    if method == "tools/call" then headers["Mcp-Name"] = "echo" end
  else
    headers["MCP-Protocol-Version"] = "2025-11-25"
  end
end

-- What a 2026-07-28 client sends with every request (clientInfo: "SHOULD", and the official SDK does).
local meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"4"},"io.modelcontextprotocol/clientCapabilities":{}}'

function request()
  counter = counter + 1
  local params
  if method == "tools/call" then
    local arguments
    if pad == nil then
      arguments = "{}"
    else
      arguments = '{"n":' .. counter .. ',"text":"' .. pad .. '"}'
    end
    params = '"name":"echo","arguments":' .. arguments
  else
    params = nil
  end
  local body
  if mode == "stateless" then
    body = '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"' .. method .. '","params":{' .. meta .. (params and (',' .. params) or '') .. '}}'
  else
    headers["Mcp-Session-Id"] = sessions[(counter % #sessions) + 1]
    body = '{"jsonrpc":"2.0","id":' .. counter .. ',"method":"' .. method .. '","params":{' .. (params or '') .. '}}'
  end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50=%d p90=%d p99=%d mean=%.1f max=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d errors_status=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.timeout, e.status))
end
