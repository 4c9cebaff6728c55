"""IT assets: the inventory (datacenters → servers → containers → services, and GPUs) and
who holds which GPU.

Changing the inventory is in inventory.py, reading it in reads.py, the checks every write runs
in records.py, GPU holds (on the hold engine) in gpus.py.
"""

from __future__ import annotations

from db import assets as store
from db.engine import Database
from domain.assets.gpus import GPU_EVENTS, GpuEventKind, GpuHolds
from domain.assets.inventory import Inventory
from domain.assets.reads import AssetReads, GpuView, Sort

__all__ = ["GPU_EVENTS", "Assets", "GpuEventKind", "GpuHolds", "GpuView", "Sort"]


class Assets(AssetReads, Inventory):
    def __init__(self, db: Database, gpus: GpuHolds) -> None:
        Inventory.__init__(self, db)
        self.gpu_holds = gpus
        self.release_held = gpus.release_held

    async def start(self) -> None:
        """What a new inventory starts with: the GPU stream, and production, staging and
        development while there is no environment at all (safe when replicas start together)."""
        await self.gpu_holds.stream_id()
        async with self.db.transaction() as session:
            await store.add_environments_if_none(session, FIRST_ENVIRONMENTS)


FIRST_ENVIRONMENTS = {"production": "#d64545", "staging": "#e0a030", "development": "#3c9d5d"}
