"""Ask a policy: questions in, the model's texts (or why not) out, locally with transformers or from a server.

    from medix.policy import Request, ServedPolicy
    policy = ServedPolicy("MBZUAI/MediX-R1-8B", "http://127.0.0.1:8000/v1", max_new_tokens=512)
    [answer] = policy.generate([Request("What does a widened mediastinum suggest?", images=("scan.png",))])
    print(answer.text if answer.ok else answer.error)

`medix infer` (`Assistant`: one question at a time) and eval's generate phase (`eval/generate.py`: every item of
a task, with its records and resume around this) both ask through these two classes, so a question reaches the
model in one layout: the system prompt (if any), then one user turn with its images first and the text last;
images downscaled to `image_max_side` and, for a server, sent as `image_format` data URLs.

- `LocalPolicy`: transformers on this machine (CPU works; a GPU is used when present), through the one local
  `medix.generation.generate`; text models decode `batch_size` requests per call, left-padded; vision models
  one at a time, since their processors batch images of different sizes unevenly. Greedy unless `temperature`.
- `ServedPolicy`: any OpenAI-compatible server (vLLM, SGLang, llama.cpp), through the one `ChatClient`: several
  base URLs balanced, retries, timeouts, concurrency, the circuit breaker — its settings passed through as
  `ChatClient`'s own. `stream` yields answers as they finish (eval appends each record at once).

A module of its own rather than part of `generation.py`: that file is the transformers decoding loop, which
training (validation, rollouts) also uses with its own conversations; this one sits above it and `chat_client.py`
and owns what only asking a policy needs — the request layout, the images, a failed request as an `Answer`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from medix.data.images import MAX_IMAGE_SIDE, load_image, openai_content
from medix.errors import MedixError


@dataclass(frozen=True)
class Request:
    """One question: the user's text, its images (paths, bytes or PIL images; shown before the text), an optional
    system prompt."""

    text: str
    images: tuple = ()
    system: str | None = None

    def size(self) -> tuple[str, int]:
        """The text (system message included) and the number of images: what a server's context must hold."""
        return (self.system or "") + self.text, len(self.images)


@dataclass(frozen=True)
class Answer:
    """The model's text, or why there is none."""

    text: str | None
    error: str | None = None
    attempts: int = 0  # model calls made: HTTP tries for a server, 1 for a local batch, 0 when nothing was asked
    circuit_open: bool = False  # not asked: the servers had stopped answering (`ServedPolicy.circuit_error`)

    @property
    def ok(self) -> bool:
        return self.error is None


class Policy:
    """What both kinds share: decoding settings, the images' size, and `generate` (one answer per request, in
    order; a request that fails is an `Answer` with its error, never an exception)."""

    def __init__(self, max_new_tokens: int, temperature: float, image_max_side: int | None):
        self.max_new_tokens, self.temperature, self.image_max_side = max_new_tokens, temperature, image_max_side

    def images(self, request: Request) -> list:
        """The request's images as RGB PIL images at `image_max_side`; a MedixError names one that cannot be read."""
        return [load_image(image, max_side=self.image_max_side) for image in request.images]

    def generate(self, requests: list[Request]) -> list[Answer]:
        raise NotImplementedError


class LocalPolicy(Policy):
    """transformers on this machine: a causal LM for text-only models, image-text-to-text for vision models."""

    def __init__(self, model: str, vision: bool | None = None, device: str | None = None, *, max_new_tokens: int,
                 temperature: float = 0.0, batch_size: int = 8, image_max_side: int | None = MAX_IMAGE_SIDE):
        from medix.models import is_vision_model

        super().__init__(max_new_tokens, temperature, image_max_side)
        self.model_name, self.device, self.batch_size = model, device, batch_size
        self.vision = is_vision_model(model) if vision is None else vision  # a zoo model by its kind, else its config
        self._loaded = None

    def load(self):
        """(model, tokenizer or processor), loaded on first use; a model that cannot load is a MedixError."""
        if self._loaded is None:
            from medix.models import load_model

            self._loaded = load_model(self.model_name, self.vision, self.device)
        return self._loaded

    def generate(self, requests: list[Request]) -> list[Answer]:
        from medix.generation import generate, user_turn

        answers, asked = {}, {}  # request index -> its answer / the images it shows the model
        for i, request in enumerate(requests):
            try:  # a text model is not shown the images, but an unreadable one still fails its request
                images = self.images(request)
                asked[i] = images if self.vision else []
            except MedixError as err:
                answers[i] = Answer(None, str(err))
        if asked:
            model, processing = self.load()
            batch_size = 1 if self.vision else self.batch_size  # a processor batches images of different sizes unevenly
            conversations = [user_turn(requests[i].text, len(images), requests[i].system)
                             for i, images in asked.items()]
            try:
                texts = generate(model, processing, conversations, list(asked.values()) if self.vision else None,
                                 self.max_new_tokens, self.temperature, batch_size=batch_size)
                answers.update({i: Answer(text, None, 1) for i, text in zip(asked, texts)})
            except (RuntimeError, ValueError) as err:  # e.g. out of memory: these requests fail visibly
                answers.update(dict.fromkeys(asked, Answer(None, f"{err.__class__.__name__}: {str(err)[:200]}", 1)))
        return [answers[i] for i in range(len(requests))]


class ServedPolicy(Policy):
    """An OpenAI-compatible chat endpoint; `client` settings are `ChatClient`'s (api_key_env, timeout_s,
    max_retries, max_concurrency, max_consecutive_failures, ...). `deadline_s` bounds one request's tries together."""

    def __init__(self, model: str, base_urls: list[str] | str, *, max_new_tokens: int, temperature: float = 0.0,
                 image_format: str = "PNG", image_max_side: int | None = MAX_IMAGE_SIDE,
                 deadline_s: float | None = None, **client):
        from medix.chat_client import ChatClient  # openai is imported only by those who ask a server

        super().__init__(max_new_tokens, temperature, image_max_side)
        self.model_name, self.image_format, self.deadline_s = model, image_format, deadline_s
        self.client = ChatClient(base_urls, **client)

    @property
    def circuit_error(self) -> str | None:
        """Why the servers are taken as stopped (the circuit breaker is open); None while they answer."""
        return self.client.circuit_error

    def messages(self, request: Request) -> list[dict]:
        """The request's chat messages: the system prompt, then the images (data URLs) and the text."""
        images = self.images(request)
        content = openai_content(request.text, images, self.image_format) if images else request.text
        system = [{"role": "system", "content": request.system}] if request.system else []
        return system + [{"role": "user", "content": content}]

    async def ask(self, request: Request) -> Answer:
        try:
            messages = self.messages(request)
        except MedixError as err:  # an unreadable image fails this request, not the others
            return Answer(None, str(err))
        result = await self.client.chat(messages, model=self.model_name, temperature=self.temperature,
                                        max_tokens=self.max_new_tokens, deadline_s=self.deadline_s)
        return Answer(result.text if result.ok else None, result.error, result.attempts, result.circuit_open)

    async def stream(self, requests: list[Request], on_stall: Callable[[float, int], None] | None = None
                     ) -> AsyncIterator[tuple[int, Answer]]:
        """(index, answer) as each request finishes, all in flight at once (the client bounds how many reach a
        server). Stops once the circuit opens: the requests not yielded were not asked. `on_stall(seconds, waiting)`
        is called while no reply comes. Use it inside `contextlib.aclosing`, so that a consumer that stops (an
        error, Ctrl-C) drops the requests still running instead of leaving them."""
        tasks = [asyncio.ensure_future(self.ask(request)) for request in requests]
        index = {task: i for i, task in enumerate(tasks)}
        pending = set(tasks)
        quiet_s, waited = min(120.0, self.client.timeout_s / 2), 0.0
        try:
            while pending and not self.client.circuit_error:
                done, pending = await asyncio.wait(pending, timeout=quiet_s, return_when=asyncio.FIRST_COMPLETED)
                waited = 0.0 if done else waited + quiet_s
                if not done and on_stall is not None:
                    on_stall(waited, len(pending))
                for task in done:
                    answer = task.result()
                    if not answer.circuit_open:
                        yield index[task], answer
        finally:  # every way out: the requests still running are dropped, the connections closed with this loop
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.aclose()

    def generate(self, requests: list[Request]) -> list[Answer]:
        return asyncio.run(self._gather(requests))

    async def _gather(self, requests: list[Request]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(requests)
        async with contextlib.aclosing(self.stream(requests)) as finished:
            async for i, answer in finished:
                answers[i] = answer
        stopped = Answer(None, self.circuit_error or "the policy server stopped answering", circuit_open=True)
        return [answer or stopped for answer in answers]
