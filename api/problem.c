/* api/problem.c - problem+json bodies (see problem.h). */
#include "api/problem.h"

#include <string.h>

const char *problem_title(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void problem_write(sbuf *out, int status, const char *slug, const char *detail, const char *instance,
                   const char *request_id)
{
    sbuf_adds(out, "{\"type\":\"urn:recd:problem:");
    sbuf_adds(out, slug ? slug : "error");
    sbuf_adds(out, "\",\"title\":");
    const char *title = problem_title(status);
    sbuf_json_str(out, title, strlen(title));
    sbuf_printf(out, ",\"status\":%d", status);
    if (detail) {
        sbuf_adds(out, ",\"detail\":");
        sbuf_json_str(out, detail, strlen(detail));
    }
    if (instance) {
        sbuf_adds(out, ",\"instance\":");
        sbuf_json_str(out, instance, strlen(instance));
    }
    if (request_id) {
        sbuf_adds(out, ",\"request_id\":");
        sbuf_json_str(out, request_id, strlen(request_id));
    }
    sbuf_adds(out, "}\n");
}
