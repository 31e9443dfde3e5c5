-- wrk script: POST /rooms/:id/read {seq} with a bearer token (env TOKEN), over the
-- rooms in env ROOMS (comma-separated ids), each request the next room and a higher
-- seq, so that every mark moves a read position (clamped to the room's last seq).
local rooms = {}
for id in string.gmatch(os.getenv("ROOMS") or "", "[^,]+") do rooms[#rooms + 1] = id end
local token = os.getenv("TOKEN")
local n = 0
request = function()
  n = n + 1
  local room = rooms[(n % #rooms) + 1]
  return wrk.format("POST", "/rooms/" .. room .. "/read",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token },
    '{"seq":' .. n .. '}')
end
