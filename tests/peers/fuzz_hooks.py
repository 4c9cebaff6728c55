"""schemathesis checks for `make fuzz`: whatever the fuzzer sends, Holdfast answers with JSON
and every error carries a code that is not INTERNAL_SERVER_ERROR."""

import schemathesis


@schemathesis.check
def no_internal_server_error(ctx, response, case):
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:300]}")
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"not JSON: {response.text[:300]}") from None
    for error in body.get("errors") or [] if isinstance(body, dict) else []:
        code = (error.get("extensions") or {}).get("code")
        if code in ("INTERNAL_SERVER_ERROR", None):
            raise AssertionError(f"{code}: {error.get('message')}")
