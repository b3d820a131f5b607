"""The lifetime of a jig: its instruments opened and one background task, as one resource.

A jig's ``async with`` enters its instruments (each driver is an async context manager),
starts its task (the pressure loop, or the force monitor of a bolted jig) and, on the way
out, cancels and awaits the task before closing the instruments. A jig is reusable but not
reentrant.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait for it, keeping a cancellation aimed at the caller."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class OwnedTask:
    """Resources entered in order, then one named task; :meth:`stop` undoes both."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._stack: contextlib.AsyncExitStack | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, resources: Sequence[object],
                    run: Callable[[], Coroutine[Any, Any, None]], task_name: str) -> None:
        """Enter every resource that is an async context manager (drivers are; models in
        tests need not be), then start ``run()`` as the task ``task_name``."""
        if self._stack is not None:
            raise RuntimeError(f"{self.owner} is already open (a jig is not reentrant)")
        stack = contextlib.AsyncExitStack()
        try:
            for resource in resources:
                if isinstance(resource, contextlib.AbstractAsyncContextManager):
                    await stack.enter_async_context(resource)
            self.task = asyncio.create_task(run(), name=task_name)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def stop(self) -> None:
        """Cancel and await the task, then close the resources in reverse order."""
        task, stack, self.task, self._stack = self.task, self._stack, None, None
        try:
            if task is not None:
                await cancel_and_wait(task)
        finally:
            if stack is not None:
                await stack.aclose()
