-- GET with the API key. args: api key
function init(args)
  key = args[1]
  wrk.headers["Authorization"] = "Bearer " .. key
end
