"""GraphiQL is served with our own JS and CSS, so it works on an air-gapped machine."""

import re

EXTERNAL = re.compile(r"""(src|href)\s*=\s*["'](?!/static/|data:)""")


async def test_browsers_get_graphiql_from_local_assets(api):
    page = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "Holdfast GraphiQL" in html
    assert not EXTERNAL.search(html), "GraphiQL must not load anything from another host"
    assets = re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", html)
    assert sorted(assets) == sorted(
        [
            "/static/graphiql/graphiql.min.css",
            "/static/graphiql/react.production.min.js",
            "/static/graphiql/react-dom.production.min.js",
            "/static/graphiql/graphiql.min.js",
        ]
    )
    for asset in assets:
        response = await api.http.get(asset)
        assert response.status_code == 200, asset
        expected = "text/css" if asset.endswith(".css") else "javascript"
        assert expected in response.headers["content-type"], asset
        assert len(response.content) > 1000, asset
