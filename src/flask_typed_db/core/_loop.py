"""One long-lived event loop, in a thread of its own, for sync code that runs coroutines.

A WSGI server calls Flask from ordinary threads, and Flask's default way to run an
``async def`` view (asgiref's ``async_to_sync``) makes a new event loop for each call. A
pool of asyncio connections cannot live across those loops: a connection works only on
the loop it was made on. So the process gets one loop that lives as long as it does, and
every coroutine the sync side runs is run on it: the pools made on it stay usable
request after request, and requests from many threads run on it concurrently.

Nothing here exists until the first coroutine is run: an app that runs none has no
thread and no loop. The thread is a daemon, so it never keeps the process alive; before
the interpreter joins its threads at exit, every pool whose connections were made on the
loop is closed, whoever made its engine (aiosqlite's connection threads would otherwise
keep the process from exiting), and the loop is stopped and closed. A forked child
starts with no loop, and makes its own on first use; the parent's is left untouched,
never closed from the child.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

if TYPE_CHECKING:
    from sqlalchemy.pool import Pool

T = TypeVar("T")

#: How long exit waits for the engines' connections to close before it gives up.
_EXIT_TIMEOUT = 5.0


class LoopThread:
    """An event loop run forever by a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        #: The pools whose connections were made on this loop, closed on it at exit.
        self._pools: weakref.WeakSet[Pool] = weakref.WeakSet()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="flask-typed-db event loop", daemon=True
        )
        self._thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return threading.get_ident() == self._thread.ident

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and return its result, or raise its error.

        The coroutine runs in a copy of the caller's context (``contextvars``), so
        Flask's current app and request are the caller's.

        :raises RuntimeError: If called from the loop's own thread, which would wait
            forever for itself.
        """
        if self.in_loop_thread():
            coroutine.close()
            raise RuntimeError(
                "A coroutine cannot be run to completion from the event loop's own"
                " thread: that would wait forever. 'await' it instead."
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            # The caller stops waiting (KeyboardInterrupt, a thread being stopped): the
            # coroutine is cancelled, so that it releases what it holds.
            future.cancel()
            raise

    def close_at_exit(self, pool: Pool) -> None:
        """Close ``pool``'s connections, which were made on this loop, on it before the
        loop is closed at exit. Weakly held: a pool collected before then closes its
        connections as it goes.
        """
        self._pools.add(pool)

    def close(self, timeout: float = _EXIT_TIMEOUT) -> None:
        """Close the pools given to :meth:`close_at_exit`, then stop the loop, wait for
        its thread and close it.
        """
        if not self.loop.is_closed() and self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._dispose_all(), self.loop)
            try:
                future.result(timeout)
            except Exception:  # exit goes on: the connections die with the process
                future.cancel()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

    async def _dispose_all(self) -> None:
        # As AsyncEngine.dispose() does: the sync pool's work, in SQLAlchemy's greenlet.
        from sqlalchemy.util import greenlet_spawn

        for pool in list(self._pools):
            await greenlet_spawn(pool.dispose)
        # Let transports closed above run their last callbacks before the loop stops.
        await asyncio.sleep(0)


class _ProcessLoop:
    """The process's one loop thread, started on first use, and forgotten in a child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: LoopThread | None = None
        #: In a forked child, the parent's loop: kept, never closed or collected here.
        self._parents: list[LoopThread] = []

    def get(self) -> LoopThread:
        current = self.current
        if current is None:
            with self._lock:
                current = self.current
                if current is None:
                    current = self.current = LoopThread()
        return current

    def close(self) -> None:
        current, self.current = self.current, None
        if current is not None:
            current.close()

    def forget_parents(self) -> None:
        if self.current is not None:
            self._parents.append(self.current)
        self.current = None
        # The parent may have held it while forking; the thread that did is not here.
        self._lock = threading.Lock()


_process_loop = _ProcessLoop()


def shared_loop() -> LoopThread:
    """The process's loop thread, started on first use."""
    return _process_loop.get()


def loop_started() -> bool:
    """Whether this process has started its loop thread."""
    return _process_loop.current is not None


def close_at_exit_if_shared(pool: Pool, loop: asyncio.AbstractEventLoop) -> None:
    """Have ``pool``, whose connections are made on ``loop``, closed at exit if that is
    the shared loop, whoever made the pool's engine: the loop is closed at exit, and
    with it the only way to close those connections cleanly. A pool on a loop of the
    caller's own (``asyncio.run()`` in a worker) is the caller's to dispose of.
    """
    current = _process_loop.current
    if current is not None and current.loop is loop:
        current.close_at_exit(pool)


# Before the interpreter waits for non-daemon threads: aiosqlite's connection threads
# are non-daemon, and end only when their connections are closed. concurrent.futures
# registers its own shutdown the same way; atexit runs too late for this.
threading._register_atexit(_process_loop.close)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]  # no public hook runs before threads are joined
if sys.platform != "win32":
    os.register_at_fork(after_in_child=_process_loop.forget_parents)
