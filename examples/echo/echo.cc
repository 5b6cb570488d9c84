// echo: replies with the request body unchanged, keeping its content type.
#include <wisp/function.hpp>

#include <string>

static void Echo(const wisp::Request& req, wisp::Response& res) {
  std::string_view type = req.Header("content-type");
  if (!type.empty()) res.Header("content-type", std::string(type));
  res.Write(req.Body());
}

WISP_FUNCTION(Echo)
