"""The request's DataLoaders for the asset tree: each edge of the tree is loaded for every
parent at once, one query per level, however big the tree is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from domain.assets import Assets
from graph.context import Context


def _by_key(load: Callable[[list[int]], Awaitable[dict[int, Any]]], default: Any = None):
    async def batch(keys: list[int]) -> list[Any]:
        found = await load(list(keys))
        return [found.get(key, default) for key in keys]

    return batch


@dataclass
class AssetLoaders:
    datacenter: DataLoader
    environment: DataLoader
    server: DataLoader
    container: DataLoader
    gpu_row: DataLoader
    servers_of_datacenter: DataLoader
    containers_of_server: DataLoader
    services_of_container: DataLoader
    gpus_of_server: DataLoader
    tags_of_server: DataLoader
    ports_of_container: DataLoader

    @classmethod
    def of(cls, assets: Assets, *, cache: bool) -> AssetLoaders:
        def rows(kind: str) -> DataLoader:
            return DataLoader(_by_key(lambda ids: assets.by_ids(kind, ids)), cache=cache)

        def children(kind: str, parent: str) -> DataLoader:
            return DataLoader(
                _by_key(lambda ids: assets.children(kind, parent, ids), []), cache=cache
            )

        return cls(
            datacenter=rows("datacenter"),
            environment=rows("environment"),
            server=rows("server"),
            container=rows("container"),
            gpu_row=rows("gpu"),
            servers_of_datacenter=children("server", "datacenter_id"),
            containers_of_server=children("container", "server_id"),
            services_of_container=children("service", "container_id"),
            gpus_of_server=DataLoader(_by_key(assets.gpus_of_servers, []), cache=cache),
            tags_of_server=DataLoader(_by_key(assets.tags, []), cache=cache),
            ports_of_container=DataLoader(_by_key(assets.ports, []), cache=cache),
        )


def loaders(info: Info[Context, None]) -> AssetLoaders:
    """This request's loaders; a websocket's context outlives its operations, so there they
    batch but do not cache."""
    context = info.context
    found = context.loaders.get("assets")
    if found is None:
        found = context.loaders["assets"] = AssetLoaders.of(
            context.services.assets, cache=not context.long_lived
        )
    return found
