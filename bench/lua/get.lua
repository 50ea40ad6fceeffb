-- GET one path, optionally spread round-robin over many users' bearer tokens.
--   wrk ... -s bench/lua/get.lua http://HOST:PORT -- PATH [TOKENS_FILE]
-- TOKENS_FILE holds one access token per line. Requests are built once in init(), so wrk's own
-- Lua costs the same per request for the hello-world baseline and for the workload.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "counting.lua")

local prepared = {}
local count, index = 0, 0

function init(args)
   local path, tokens_file = args[1], args[2]
   if tokens_file ~= nil and tokens_file ~= "" then
      for token in io.lines(tokens_file) do
         if token ~= "" then
            table.insert(prepared, wrk.format("GET", path, { Authorization = "Bearer " .. token }))
         end
      end
   else
      prepared[1] = wrk.format("GET", path)
   end
   count = #prepared
   -- Threads start at different users.
   index = ((id or 1) - 1) * math.floor(count / 2)
end

function request()
   index = index % count + 1
   return prepared[index]
end
