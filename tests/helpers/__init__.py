"""Helpers the tests import (never from conftest.py): API calls, clients, processes, browsers."""
