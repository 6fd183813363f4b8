"""Phase 1, generate: every item's question → the model's raw response, parsed, one record per item.

    medix eval run --model MediX-R1-8B --backend openai --base-url http://127.0.0.1:8000/v1 --phases generate

Backends: `openai` (one or several OpenAI-compatible servers, `base_urls`: each request goes to the server
with the fewest in flight, up to `max_concurrency` per server; a server that stops answering is reported
and its items retried on the others; images as data URLs; each request retried up to `max_retries`; a
zoo name is asked for by its hub id, e.g. MBZUAI/MediX-R1-8B) and `local` (transformers; text models decode a
batch of `batch_size` questions per `generate()` call, left-padded; vision models one at a time).
Greedy by default. Records are appended as they finish; a restart skips the ids already written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from medix.backends import get_backend
from medix.chat_client import ChatClient
from medix.data.images import load_image, openai_content
from medix.data.prompts import build_prompt
from medix.data.response import parse_response
from medix.errors import MedixError
from medix.safe_text import display_url
from medix.eval.config import EvalConfig
from medix.eval.schema import EvalItem, GenerationRecord, JsonlStore, file_sha256, sha256
from medix.models import served_name, zoo_entry
from medix.serving.fit import overflow_error

log = logging.getLogger(__name__)


def user_prompt(cfg: EvalConfig, item: EvalItem) -> str:
    if not cfg.format_prompt:
        return item.question
    return build_prompt(item.question, cfg.think_tag or zoo_entry(cfg.model).think_tag)


def make_record(cfg: EvalConfig, generator: dict, item: EvalItem, raw: str | None, error: str | None,
                attempts: int) -> GenerationRecord:
    """`generator`: `cfg.generator_identity()`, computed once per phase (the same for every record)."""
    parsed = parse_response(raw) if raw is not None else None
    return GenerationRecord(
        id=item.id, task=item.task, prompt_sha256=prompt_hash(cfg, item), data_revision=item.data_revision,
        generator=generator, question=item.question, reference=item.reference, meta=item.meta,
        index=item.index, answer_idx=item.answer_idx, raw=raw, error=error, attempts=attempts,
        modality=parsed.modality if parsed else None, reasoning=parsed.reasoning if parsed else None,
        answer=parsed.answer if parsed else None, well_formed=parsed.well_formed if parsed else False)


def prompt_hash(cfg: EvalConfig, item: EvalItem) -> str:
    """Of what the model is shown: system and user prompt, and the images by content (the same image read from
    a local mirror or from the hub is the same prompt)."""
    return sha256(cfg.system_prompt, user_prompt(cfg, item), [file_sha256(p) for p in item.images])


def check_resume(cfg: EvalConfig, items: list[EvalItem], store: JsonlStore, refresh_changed: bool = False) -> int:
    """Stored records whose prompt no longer matches their item (the data changed since), or that were read from
    another commit of the hub dataset: an error naming the task and count, or with `refresh_changed` those
    records are dropped so they are generated again."""
    current = {item.id: prompt_hash(cfg, item) for item in items}
    revision = {item.id: item.data_revision for item in items}
    stored = [r for r in store.read() if r["id"] in current]
    moved = {r["id"]: r["data_revision"] for r in stored
             if r.get("data_revision") and revision[r["id"]] and r["data_revision"] != revision[r["id"]]}
    stale = {r["id"] for r in stored if r.get("prompt_sha256") != current[r["id"]]} | set(moved)
    task = items[0].task if items else "?"
    if moved and not refresh_changed:
        old = sorted(set(moved.values()))[0]
        raise MedixError(f"task {task}: {len(moved)} stored record(s) in {store.path} were made from commit {old} "
                         f"of its hub dataset, which now serves {items[0].data_revision}. Pin the old data with "
                         f"--tasks {task}@{old}, re-run with --refresh-changed to regenerate them from the new "
                         "commit, or use a new --output-dir")
    if stale and not refresh_changed:
        raise MedixError(f"task {task}: {len(stale)} stored record(s) in {store.path} were made for different "
                         f"questions (the data changed since, e.g. item {sorted(stale)[0]}). Re-run with "
                         "--refresh-changed to regenerate just those, or use a new --output-dir")
    return store.drop(lambda r: r["id"] in stale) if stale else 0


def run_generate(cfg: EvalConfig, items: list[EvalItem], store: JsonlStore,
                 on_done: Callable[[int], None] = lambda n: None) -> int:
    """Generate for the items not yet in `store`; returns how many failed."""
    done = store.ids()
    todo = [item for item in items if item.id not in done]
    if not todo:
        return 0
    generator = cfg.generator_identity()
    if get_backend(cfg.backend).served:  # OpenAI-compatible servers, many requests in flight
        records = asyncio.run(_openai_all(cfg, generator, todo, store, on_done))
    else:
        records = _local_all(cfg, generator, todo, store, on_done)
    store.sync()
    return sum(r.error is not None for r in records)


async def _openai_all(cfg: EvalConfig, generator: dict, items: list[EvalItem], store: JsonlStore,
                      on_done) -> list[GenerationRecord]:
    client = ChatClient(cfg.base_urls, cfg.api_key_env, cfg.timeout_s, cfg.max_retries,
                        max_concurrency=cfg.max_concurrency, max_consecutive_failures=cfg.max_consecutive_failures)
    out = []
    tasks = [asyncio.ensure_future(_openai_one(cfg, generator, client, item)) for item in items]
    pending = set(tasks)
    quiet_s, waited = min(120.0, cfg.timeout_s / 2), 0.0  # a server that holds every request: said, not silent
    try:
        while pending and not client.circuit_error:
            done, pending = await asyncio.wait(pending, timeout=quiet_s, return_when=asyncio.FIRST_COMPLETED)
            waited = 0.0 if done else waited + quiet_s
            if not done:
                log.warning("no reply from the policy server(s) %s for %.0f s (%d requests waiting); each try gives "
                            "up after timeout_s=%.0f s and an item after item_timeout_s=%.0f s: lower them in the "
                            "eval config to fail a stalled server sooner",
                            ", ".join(display_url(u) for u in cfg.base_urls), waited, len(pending), cfg.timeout_s,
                            cfg.item_timeout_s or 2 * cfg.timeout_s)
            for task in done:
                record, circuit_open = task.result()
                if circuit_open:  # not recorded: the same command tries it again once the server is back
                    continue
                store.append([record], sync=False)  # flushed per record: a SIGKILL loses at most the one in flight
                out.append(record)
                on_done(1)
    finally:  # the phase stopped (circuit open, an error, Ctrl-C): its requests are dropped, not left running
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
    if len(out) < len(items):
        raise MedixError(f"{client.circuit_error or 'the policy server stopped answering'}. {len(out)} responses "
                         f"of this task are saved in {store.path}, {len(items) - len(out)} were not attempted; "
                         "re-run the same command once the server is back to resume")
    return out


def request_size(cfg: EvalConfig, item: EvalItem) -> tuple[str, int]:
    """The text (system message included) and the number of images this item's request carries."""
    return (cfg.system_prompt or "") + user_prompt(cfg, item), len(item.images)


def _messages(cfg: EvalConfig, item: EvalItem) -> list[dict]:
    """Images first (data URLs in the protocol's format and size), then the text."""
    protocol = cfg.protocol
    images = [load_image(path, max_side=protocol.image_max_side) for path in item.images]
    text = user_prompt(cfg, item)
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return system + [{"role": "user", "content": openai_content(text, images, protocol.image_format) if images else text}]


async def _openai_one(cfg: EvalConfig, generator: dict, client: ChatClient,
                      item: EvalItem) -> tuple[GenerationRecord, bool]:
    """(record, whether the circuit was open so nothing was asked)."""
    try:
        problem = missing_image(cfg, item)
        if problem:
            raise MedixError(problem)
        messages = _messages(cfg, item)
    except MedixError as err:  # a missing or unreadable image fails this item, not the run
        return make_record(cfg, generator, item, None, str(err), 0), False
    result = await client.chat(messages, model=served_name(cfg.model), temperature=cfg.temperature,
                               max_tokens=cfg.max_new_tokens, deadline_s=cfg.item_timeout_s or 2 * cfg.timeout_s)
    error = result.error and (overflow_error(result.error, item.id, cfg.max_new_tokens) or result.error)
    return make_record(cfg, generator, item, result.text if result.ok else None, error, result.attempts), \
        result.circuit_open


def _local_all(cfg: EvalConfig, generator: dict, items: list[EvalItem], store: JsonlStore,
               on_done) -> list[GenerationRecord]:
    generate = local_generator(cfg)
    out = []
    for start in range(0, len(items), cfg.batch_size):
        batch = items[start:start + cfg.batch_size]
        broken = {item.id: missing_image(cfg, item) or image_problem(item) for item in batch}
        records = [make_record(cfg, generator, item, None, broken[item.id], 0) for item in batch if broken[item.id]]
        batch = [item for item in batch if not broken[item.id]]
        try:
            texts = generate(batch) if batch else []
            records += [make_record(cfg, generator, item, text, None, 1) for item, text in zip(batch, texts)]
        except (RuntimeError, ValueError) as err:  # e.g. out of memory: this batch fails visibly, the run goes on
            records += [make_record(cfg, generator, item, None, f"{err.__class__.__name__}: {str(err)[:200]}", 1)
                        for item in batch]
        store.append(records, sync=False)
        out.extend(records)
        on_done(len(records))
    return out


def missing_image(cfg: EvalConfig, item: EvalItem) -> str | None:
    """A VLM item without its image is a failed item, not a text question, unless `allow_text_only`."""
    if not item.meta.get("image_missing") or cfg.allow_text_only:
        return None
    reason = item.meta.get("image_missing_reason")
    detail = f" ({reason})" if reason else ""
    return (f"image missing{detail}: a VLM item is not asked without its image; provide the images, or pass "
            "--allow-text-only to ask such items text-only on purpose")


def image_problem(item: EvalItem) -> str | None:
    """Why an item's image cannot be used (missing, not an image), also for text-only models that would
    ignore it: the item is then recorded as failed rather than silently asked without its image."""
    for path in item.images:
        try:
            load_image(path, max_side=None)
        except MedixError as err:
            return str(err)
    return None


def local_generator(cfg: EvalConfig) -> Callable[[list[EvalItem]], list[str]]:
    """Batched local generation with transformers (CPU works; a GPU is used when present). Text models
    decode `batch_size` questions per call, left-padded; vision models one question at a time, since their
    processors batch images of different sizes unevenly."""
    from medix.generation import generate, user_turn
    from medix.models import is_vision_model, load_model

    vision = is_vision_model(cfg.model)  # a zoo model by its kind, any other by its config
    if vision and cfg.system_prompt:
        raise MedixError("--system-prompt is not supported for local vision models; use --backend openai")
    model, processing = load_model(cfg.model, vision)

    def run(items: list[EvalItem]) -> list[str]:
        images = [[load_image(p, max_side=cfg.protocol.image_max_side) for p in item.images] if vision else []
                  for item in items]  # the protocol's image size, as sent to a server
        conversations = [user_turn(user_prompt(cfg, item), len(imgs), cfg.system_prompt)
                         for item, imgs in zip(items, images)]
        return generate(model, processing, conversations, images if vision else None, cfg.max_new_tokens,
                        cfg.temperature, batch_size=1 if vision else cfg.batch_size)

    return run
