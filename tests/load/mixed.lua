-- A mixed message workload for wrk: list pages, post messages, read and delete posted messages.
-- Every answer should be 2xx; wrk counts anything else as an error, and done() prints the
-- count of each status.
--
-- wrk shares one Lua state among a thread's connections, so nothing here may assume which
-- request a response belongs to: POST answers are recognised by their 201, messages to read are
-- kept apart from messages to delete (a read must never race a delete of the same message).
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  stable = {}     -- read by GET /messages/{id}, never deleted
  deletable = {}  -- each deleted exactly once
  statuses = {}
end

request = function()
  local r = math.random(100)
  if #stable > 0 and r <= 15 then
    return wrk.format("GET", "/messages/" .. stable[math.random(#stable)])
  elseif #deletable > 0 and r <= 25 then
    return wrk.format("DELETE", "/messages/" .. table.remove(deletable, math.random(#deletable)))
  elseif r <= 60 then
    return wrk.format("POST", "/messages", { ["Content-Type"] = "text/plain" },
      "load test message " .. math.random(1000000))
  end
  return wrk.format("GET", "/messages?limit=20")
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    local id = body:match('"id":"([0-9a-f%-]+)"')
    if id then
      if #stable < 50 then table.insert(stable, id) else table.insert(deletable, id) end
    end
  end
end

done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local line = "statuses:"
  for status, n in pairs(total) do line = line .. " " .. status .. "=" .. n end
  print(line)
end
