-- wrk script: POST /rooms/:id/messages with a bearer token (env TOKEN).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"content":"hello from wrk, a message of ordinary length"}'
