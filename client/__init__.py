"""The `holdfast` CLI's client side: a client of the public GraphQL API, like any script."""
