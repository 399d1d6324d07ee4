"""HTTP routes of the registry service: thin edges that call one service function each."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
