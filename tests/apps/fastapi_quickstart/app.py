"""The README's FastAPI quickstart, run as ``uvicorn app:app`` (it knows nothing of spyglass)."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def home():
    return {"home": True}
