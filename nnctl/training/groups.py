"""Members in groups on the cores: a step of K members split into groups of members, each group's
forward, loss, backward, clipping and update run in a thread of its own.

A step of K members is K networks' arithmetic; on one core it costs about K steps of one (the
products are as fast per member stacked as alone). NumPy releases the GIL in BLAS and in its
ufuncs, so two threads that each step half of the members use two cores; members never mix, so
each member's arithmetic is what it is in one thread, the same products on the same rows, and
its weights are the same bits. BLAS is held at one thread during epochs (threadpoolctl), as two
threads that each start two BLAS threads would fight over the cores.

Each group is a `Network.members_view` (its members' rows of the weights and gradients), a
workspace of its own and an `Optimizer.members_view`; the batch, targets, weights and learning
rate come cut to its members. Where a step is small (W1's), the hand-over between threads costs
more than the half step it saves, so groups are used only from `MIN_WORK` multiply-adds a step
(off by default: see its comment);
steps that diagnostics measure layer by layer run whole, in the loop's thread.

    with member_groups(loop):                # MemberGroups.for_loop(loop), or nothing
        loop.run(start)                      # its steps through MemberGroups.train_step
"""
from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np

# multiply-adds of one step's forward products (rows x members x weights per member) from which
# groups are tried. Off (infinite) by default: on the idle 2-core machine, `train w2.yaml --seeds
# 8` stepped in groups took 2.2-2.6 ms a step against 1.0-1.1 ms in one thread (the two threads
# hand the GIL back and forth between NumPy's many small calls), and the choice's every-32nd-step
# try of groups cost ~4%. The tests set it to 0; lower it where a step is far larger than W2's.
MIN_WORK = float("inf")
PARTS = 2  # groups of members a step is cut into, taken by two threads


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    return ThreadpoolController()


def member_rows(a, members: int, start: int, stop: int):
    """Members start..stop-1 of a learning rate or gradient: a (K, ...) array's rows, a flat
    (K·P,) array's member-major block, or a float itself."""
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    if a.ndim == 1:
        return a.reshape(members, -1)[start:stop].reshape(-1)
    return a[start:stop]


def _batch_rows(a, start: int, stop: int):
    """Members start..stop-1 of a batch: (K, rows, columns) cut, (rows, columns) shared."""
    return a if a is None or a.ndim < 3 else a[start:stop]


def _plain_update(loop, step) -> bool:
    """Whether the loop's update `step` is its optimizer's step alone (a population's is, until
    it keeps stopped members' rows frozen), which the groups' optimizer views can take apart."""
    if getattr(step, "__self__", None) is loop.optimizer:
        return True
    return getattr(step, "__func__", None) is getattr(type(loop), "_step", None) and getattr(loop, "frozen", 1) is None


class _Part:
    """One group's share of a step: whoever claims it first (the loop's thread from the front,
    the helper from the back) runs it; `done` is released once it has run."""

    __slots__ = ("run", "claim", "done", "result", "error")

    def __init__(self, run):
        self.run, self.claim, self.done = run, threading.Lock(), threading.Lock()
        self.done.acquire()
        self.result = self.error = None

    def take(self) -> bool:
        """Claim and run this part unless another thread has; whether this one ran it."""
        if not self.claim.acquire(blocking=False):
            return False
        try:
            self.result = self.run()
        except BaseException as exc:  # raised in the loop's thread by `MemberGroups.train_step`
            self.error = exc
        self.done.release()
        return True


class _Helper:
    """The thread that takes a step's parts from the back while the loop's thread takes them
    from the front. A helper that is late (its core busy with other work) finds every part
    taken and the step already over: the loop's thread never waits for it to start, only for a
    part it is running."""

    def __init__(self, errors: dict):
        self.errors = errors  # the loop's np.errstate: numpy's is each thread's own
        self.wake = threading.Semaphore(0)
        self.parts: list | None = []
        self.taken = 0  # parts this thread ran (the rest the loop's thread did)
        self.thread = threading.Thread(target=self._run, name="nnctl-members", daemon=True)
        self.thread.start()

    def _run(self):
        np.seterr(**self.errors)
        while True:
            self.wake.acquire()
            parts = self.parts
            if parts is None:
                return
            for part in reversed(parts):
                self.taken += part.take()

    def offer(self, parts: list) -> None:
        self.parts = parts
        self.wake.release()

    def close(self):
        self.parts = None
        self.wake.release()
        self.thread.join()


class _Choice:
    """Whether the next step runs in groups: the faster way by recent steps' times (a moving
    average of each), the other way tried every `EXPLORE`-th step, as the machine's load comes
    and goes. Either way gives the same bits (only the time differs), so the choice is free to
    follow the clock: on a machine whose cores are busy with other work, threads only add
    hand-overs to the same share of a core."""

    EXPLORE = 32
    WEIGHT = 0.25  # of the newest step in the moving average
    # groups cost ~1.15x one thread's CPU time (two half steps' calls, hand-overs): on a busy
    # machine their times come close to one thread's and differ by noise, where one thread is
    # the safe side
    MARGIN = 0.9

    def __init__(self):
        self.seconds = {True: None, False: None}
        self.steps = 0

    def pick(self) -> bool:
        self.steps += 1
        grouped, whole = self.seconds[True], self.seconds[False]
        if grouped is None or whole is None:  # each way tried first, groups first
            return grouped is None
        faster = grouped < self.MARGIN * whole  # groups only where they clearly pay
        return not faster if self.steps % self.EXPLORE == 0 else faster

    def record(self, grouped: bool, seconds: float) -> None:
        last = self.seconds[grouped]
        self.seconds[grouped] = seconds if last is None else last + self.WEIGHT * (seconds - last)


def member_groups(loop):
    """The context a loop runs in: its members' steps in groups of threads where that pays
    (`MemberGroups.for_loop`), else nothing."""
    groups = MemberGroups.for_loop(loop)
    if groups is None:
        from contextlib import nullcontext

        return nullcontext()
    return groups


class MemberGroups:
    """`train_step` for a loop over K members, run as `groups` groups of members in threads (the
    loop's own thread steps the first group). A context: entering holds BLAS at one thread and
    starts the threads, leaving puts both back."""

    def __init__(self, loop, groups: int, controller):
        self.loop, self.count, self.controller = loop, groups, controller
        self.whole_step, self.whole_epoch = loop.train_step, loop.epoch
        self.key = None  # (network, optimizer) the groups were cut from (a population swaps them)
        self.groups: list = []
        self.helper: _Helper | None = None

    @classmethod
    def for_loop(cls, loop) -> "MemberGroups | None":
        """Groups for this loop's steps, or None where one thread is better: no members, one
        core, a small step, layers with state arrays, or no way to hold BLAS at one thread."""
        network = loop.network
        K, groups = network.members, min(2, cores())
        if not K or K < 2 or groups < 2 or loop.batch * network.flat_params.size < MIN_WORK:
            return None  # (rows x members x weights each)
        if any(layer.state for _, layer in network.leaves()):
            return None
        controller = _blas_controller()
        return None if controller is None else cls(loop, min(PARTS, K), controller)

    def __enter__(self):
        self.helper = _Helper(np.geterr())
        self.choice = _Choice()
        self.cut()
        self.loop.train_step = self.train_step
        self.pending = None  # the batch whose rows `fill_later` left to the groups
        self.loop.fill_batch = self.fill_later
        self.loop.epoch = self.epoch
        return self

    def __exit__(self, *exc):
        self.loop.train_step = self.whole_step
        del self.loop.fill_batch, self.loop.epoch  # the class's again
        self.helper.close()
        self.helper = None
        return False

    def epoch(self, *args, **kwargs):
        """The loop's epoch with BLAS at one thread: two threads that each start BLAS threads
        would fight over the cores. Scoring between epochs keeps BLAS's own threads."""
        with self.controller.limit(limits=1, user_api="blas"):
            return self.whole_epoch(*args, **kwargs)

    def fill_later(self, k, xb, yb, wb) -> None:
        """The loop's `fill_batch`: each group gathers its own members' rows of batch k."""
        self.pending = k

    def cut(self):
        """The groups of the loop's network and optimizer now: [(start, stop, network view,
        workspace, optimizer view)], cut again when the loop swapped them (a population's
        stopped members leave)."""
        loop = self.loop
        key = (loop.network, loop.optimizer)
        if self.key is None or self.key[0] is not key[0] or self.key[1] is not key[1]:
            network, K = loop.network, loop.network.members
            bounds = np.linspace(0, K, min(self.count, K) + 1).round().astype(int)
            self.groups = []
            for start, stop in zip(bounds[:-1], bounds[1:]):
                view = network.members_view(int(start), int(stop))
                self.groups.append((int(start), int(stop), view, view.workspace(),
                                   loop.optimizer.members_view(int(start), int(stop), K)))
            self.key = key
        return self.groups

    def train_step(self, network, xb, yb, wb, diagnosed, measured, step, grads, lr, clip):
        """`_Loop.train_step`, each group of members in its own thread; a diagnosed step whole."""
        loop, k = self.loop, self.pending
        self.pending = None
        # whole: a step diagnostics measure layer by layer, an update of the loop's own, or an
        # input the members share (whose first product takes one way or another by the number of
        # members, `Dense.forward`, and the two can differ in the last bit)
        if diagnosed or xb.ndim < 3 or not _plain_update(loop, step):
            if k is not None:
                type(loop).fill_batch(loop, k, xb, yb, wb)
            return self.whole_step(network, xb, yb, wb, diagnosed, measured, step, grads, lr, clip)
        grouped = self.choice.pick()
        started = time.perf_counter()
        if grouped:
            loss = self.grouped_step(k, network, xb, yb, wb, measured, grads, lr, clip)
        else:
            if k is not None:
                type(loop).fill_batch(loop, k, xb, yb, wb)
            loss = self.whole_step(network, xb, yb, wb, diagnosed, measured, step, grads, lr, clip)
        self.choice.record(grouped, time.perf_counter() - started)
        return loss

    def grouped_step(self, k, network, xb, yb, wb, measured, grads, lr, clip):
        """One step, each group of members in a thread: their losses' sum when `measured`."""
        loop = self.loop
        groups, K, t = self.cut(), network.members, loop.optimizer.t

        def job(part):
            start, stop, view, ws, optimizer = part

            def run():
                x, y, w = (_batch_rows(a, start, stop) for a in (xb, yb, wb))
                if k is not None:
                    type(loop).fill_batch(loop, k, x, y, w, slice(start, stop))
                view.forward(x, True, ws=ws)
                view.backward(y, w, ws=ws)
                norm = None
                if clip is not None:
                    from ..nn.clipping import clip_grad_norm

                    norm = clip_grad_norm(view.flat_grads, clip, stop - start)
                optimizer.t = t
                optimizer.step([member_rows(g, K, start, stop) for g in grads], member_rows(lr, K, start, stop))
                return norm
            return run

        parts = [_Part(job(group)) for group in groups]
        self.helper.offer(parts)
        for part in parts:
            part.take()
        for part in parts:  # the parts the helper took: each over once it releases `done`
            part.done.acquire()
        for part in parts:
            if part.error is not None:
                raise part.error
        loop.optimizer.t = t + 1
        if clip is not None:
            norms = [part.result for part in parts]
            loop.count_clipped(np.concatenate([n[0] for n in norms]), sum(n[1] for n in norms))
            loop.steps += 1
        if not measured:
            return 0.0
        # the loss from the groups' outputs put side by side: the same arrays, so the same bits,
        # as the loss of one pass (backward and the update leave them as forward wrote them)
        head = SimpleNamespace(output=np.concatenate([group[3].head.output for group in groups]))
        outputs = SimpleNamespace(z=np.concatenate([group[3].z for group in groups]), head=head)
        return loop.batch_loss(network, yb, wb, outputs, xb.shape[-2])
