"""Persistence on Motor. Imports neither aiohttp nor socketio."""
