-- POST a JSON body as many users in turn, each request with a fresh idempotency key.
--   wrk ... -s bench/lua/post.lua http://HOST:PORT -- PATH TOKENS_FILE NONCE BODY [KEY_HEADER]
-- The key is "b<NONCE>-<thread>-<sequence>", unique per wrk run (NONCE) and request; "%KEY%" in
-- BODY is replaced by it too (e.g. a client_order_id). KEY_HEADER defaults to Idempotency-Key;
-- "-" sends no key header.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "counting.lua")

local path, body, key_header, prefix
local auths = {}
local count, index, sequence = 0, 0, 0
local templated = false

function init(args)
   path, body, key_header = args[1], args[4], args[5] or "Idempotency-Key"
   for token in io.lines(args[2]) do
      if token ~= "" then
         table.insert(auths, "Bearer " .. token)
      end
   end
   count = #auths
   index = ((id or 1) - 1) * math.floor(count / 2)
   prefix = "b" .. args[3] .. "-" .. (id or 1) .. "-"
   templated = body:find("%KEY%", 1, true) ~= nil
end

function request()
   index = index % count + 1
   sequence = sequence + 1
   local key = prefix .. sequence
   local headers = { Authorization = auths[index], ["Content-Type"] = "application/json" }
   if key_header ~= "-" then
      headers[key_header] = key
   end
   local payload = body
   if templated then
      payload = body:gsub("%%KEY%%", key)
   end
   return wrk.format("POST", path, headers, payload)
end
