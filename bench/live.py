async def run():
    return {}
