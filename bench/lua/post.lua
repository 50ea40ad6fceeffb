-- POST a JSON body as many users in turn, each request with a fresh idempotency key.
--   wrk ... -s bench/lua/post.lua http://HOST:PORT -- PATH TOKENS_FILE NONCE BODY [KEY_HEADER]
-- The key is "b<NONCE>-<thread>-<sequence>", unique per wrk run (NONCE) and request; "%KEY%" in
-- BODY is replaced by it too (e.g. a client_order_id). KEY_HEADER defaults to Idempotency-Key;
-- "-" sends no key header.
-- BODY may hold several bodies, one per line: each wrk thread sends them in turn (1, 2, ..., 1,
-- 2, ...), e.g. a buy then a sell. wrk's Lua has no per-connection hook (request() runs per
-- thread, for whichever of its connections is ready), so the rotation is per thread's request
-- sequence; over a run every body is sent equally often (within one per thread).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "counting.lua")

local path, key_header, prefix
local bodies, templated = {}, {}
local auths = {}
local count, index, sequence = 0, 0, 0

function init(args)
   path, key_header = args[1], args[5] or "Idempotency-Key"
   for token in io.lines(args[2]) do
      if token ~= "" then
         table.insert(auths, "Bearer " .. token)
      end
   end
   count = #auths
   index = ((id or 1) - 1) * math.floor(count / 2)
   prefix = "b" .. args[3] .. "-" .. (id or 1) .. "-"
   for line in (args[4] .. "\n"):gmatch("([^\n]*)\n") do
      if line ~= "" then
         table.insert(bodies, line)
         table.insert(templated, line:find("%KEY%", 1, true) ~= nil)
      end
   end
end

function request()
   index = index % count + 1
   sequence = sequence + 1
   local key = prefix .. sequence
   local headers = { Authorization = auths[index], ["Content-Type"] = "application/json" }
   if key_header ~= "-" then
      headers[key_header] = key
   end
   local which = (sequence - 1) % #bodies + 1
   local payload = bodies[which]
   if templated[which] then
      payload = payload:gsub("%%KEY%%", key)
   end
   return wrk.format("POST", path, headers, payload)
end
