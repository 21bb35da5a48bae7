"""Thin Discord adapters over the engine, loaded as discord.py extensions (cogs.app)."""
