"""An unmodified FastAPI app: it knows nothing of spyglass."""
import asyncio

from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.responses import StreamingResponse

app = FastAPI()
background_runs = []


@app.get("/users/{user_id}")
async def user(user_id: int, q: str = None):
    return {"id": user_id, "q": q}


@app.get("/boom")
async def boom():
    return 1 / 0


@app.get("/sync-boom")
def sync_boom():
    raise RuntimeError("sync failure")


@app.get("/missing")
async def missing():
    raise HTTPException(status_code=404, detail="nope")


@app.get("/stream")
async def stream():
    async def generate():
        for i in range(3):
            await asyncio.sleep(0)
            yield f"chunk {i}\n"
    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/background")
async def background(tasks: BackgroundTasks):
    tasks.add_task(background_runs.append, "ran")
    return {"scheduled": True}


@app.post("/items")
async def add_item():
    return {"added": True}


@app.get("/health")
async def health():
    return "ok"
