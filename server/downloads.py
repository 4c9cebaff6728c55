"""`GET /downloads/<token>`: a stored file, for whoever has the link, until it expires (bytes
from the database, or streamed from the blob storage)."""

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from domain.errors import NotFound
from domain.files import LinkExpired

# The token is in the URL: no caching anywhere, no Referer leaving with it.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name in RFC 5987 form."""
    fallback = "".join(
        char if 32 <= ord(char) < 127 and char not in '"\\' else "_" for char in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def download(request: Request) -> Response:
    services = request.app.state.services
    try:
        found = await services.files.fetch(request.path_params["token"])
    except LinkExpired as error:
        return PlainTextResponse(error.message + "\n", status_code=410, headers=PRIVATE_HEADERS)
    except NotFound as error:
        return PlainTextResponse(error.message + "\n", status_code=404, headers=PRIVATE_HEADERS)
    headers = {**PRIVATE_HEADERS, "Content-Disposition": content_disposition(found.filename)}
    if found.blob is not None:  # in the blob storage: streamed, never whole in memory
        return StreamingResponse(
            found.blob.chunks(),
            media_type=found.content_type,
            headers={**headers, "Content-Length": str(found.blob.size)},
        )
    return Response(found.data, media_type=found.content_type, headers=headers)
