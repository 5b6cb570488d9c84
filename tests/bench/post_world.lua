-- wrk script: every request is POST with body "world" (wisp's /fn/hello and the floor alike).
wrk.method = "POST"
wrk.body = "world"
