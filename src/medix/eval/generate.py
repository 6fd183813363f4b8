"""Phase 1, generate: every item's question → the model's raw response, parsed, one record per item.

    medix eval run --model MediX-R1-8B --backend openai --base-url http://127.0.0.1:8000/v1 --phases generate

The model is asked through `medix.policy` (the classes `medix infer` uses too): `openai` (one or several
OpenAI-compatible servers, `base_urls`: each request goes to the server with the fewest in flight, up to
`max_concurrency` per server; a server that stops answering is reported and its items retried on the others;
images as data URLs; each request retried up to `max_retries`; a zoo name is asked for by its hub id, e.g.
MBZUAI/MediX-R1-8B) and `local` (transformers; text models decode a batch of `batch_size` questions per
`generate()` call, left-padded; vision models one at a time). Greedy by default. This module keeps what is
eval's own: the prompt and its hash, the records, resume, missing images. Records are appended as they
finish; a restart skips the ids already written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable

from medix.backends import get_backend
from medix.data.prompts import build_prompt
from medix.data.response import parse_response
from medix.errors import MedixError
from medix.safe_text import display_url
from medix.eval.config import EvalConfig
from medix.eval.records import EvalItem, GenerationRecord, JsonlStore, file_sha256, sha256
from medix.models import is_vision_model, served_name, zoo_entry
from medix.policy import LocalPolicy, Request, ServedPolicy
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
    policy = eval_policy(cfg)
    if isinstance(policy, ServedPolicy):  # many requests in flight, each record appended as it finishes
        records = asyncio.run(_served_all(cfg, policy, generator, todo, store, on_done))
    else:
        records = _local_all(cfg, policy, generator, todo, store, on_done)
    store.sync()
    return sum(r.error is not None for r in records)


def eval_policy(cfg: EvalConfig) -> LocalPolicy | ServedPolicy:
    """The policy the config names: greedy by default, images in the protocol's format and size (as sent to a
    server, so also for a local vision model), a zoo name asked of a server by its hub id."""
    protocol = cfg.protocol
    if get_backend(cfg.backend).served:
        return ServedPolicy(served_name(cfg.model), cfg.base_urls, max_new_tokens=cfg.max_new_tokens,
                            temperature=cfg.temperature, image_format=protocol.image_format,
                            image_max_side=protocol.image_max_side, deadline_s=cfg.item_timeout_s or 2 * cfg.timeout_s,
                            api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
                            max_concurrency=cfg.max_concurrency, max_consecutive_failures=cfg.max_consecutive_failures)
    vision = is_vision_model(cfg.model)  # a zoo model by its kind, any other by its config
    if vision and cfg.system_prompt:
        raise MedixError("--system-prompt is not supported for local vision models; use --backend openai")
    return LocalPolicy(cfg.model, vision, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                       batch_size=cfg.batch_size, image_max_side=protocol.image_max_side)


def policy_request(cfg: EvalConfig, item: EvalItem) -> Request:
    return Request(user_prompt(cfg, item), tuple(item.images), cfg.system_prompt)


def request_size(cfg: EvalConfig, item: EvalItem) -> tuple[str, int]:
    """The text (system message included) and the number of images this item's request carries."""
    return policy_request(cfg, item).size()


def _unasked(cfg: EvalConfig, generator: dict, items: list[EvalItem]) -> tuple[list[GenerationRecord], list[EvalItem]]:
    """(failed records of the items whose image is missing, the items to ask)."""
    problems = {item.id: missing_image(cfg, item) for item in items}
    return ([make_record(cfg, generator, item, None, problems[item.id], 0) for item in items if problems[item.id]],
            [item for item in items if not problems[item.id]])


async def _served_all(cfg: EvalConfig, policy: ServedPolicy, generator: dict, items: list[EvalItem],
                      store: JsonlStore, on_done) -> list[GenerationRecord]:
    out, to_ask = _unasked(cfg, generator, items)
    if out:
        store.append(out, sync=False)
        on_done(len(out))

    def stalled(waited: float, waiting: int) -> None:  # a server that holds every request: said, not silent
        log.warning("no reply from the policy server(s) %s for %.0f s (%d requests waiting); each try gives up after "
                    "timeout_s=%.0f s and an item after item_timeout_s=%.0f s: lower them in the eval config to "
                    "fail a stalled server sooner", ", ".join(display_url(u) for u in cfg.base_urls), waited, waiting,
                    cfg.timeout_s, cfg.item_timeout_s or 2 * cfg.timeout_s)

    async with contextlib.aclosing(policy.stream([policy_request(cfg, item) for item in to_ask], stalled)) as answers:
        async for index, answer in answers:
            item = to_ask[index]
            error = answer.error and (overflow_error(answer.error, item.id, cfg.max_new_tokens) or answer.error)
            record = make_record(cfg, generator, item, answer.text, error, answer.attempts)
            store.append([record], sync=False)  # flushed per record: a SIGKILL loses at most the one in flight
            out.append(record)
            on_done(1)
    if len(out) < len(items):  # the circuit opened: what was not answered is asked again by the next run
        raise MedixError(f"{policy.circuit_error or 'the policy server stopped answering'}. {len(out)} responses "
                         f"of this task are saved in {store.path}, {len(items) - len(out)} were not attempted; "
                         "re-run the same command once the server is back to resume")
    return out


def _local_all(cfg: EvalConfig, policy: LocalPolicy, generator: dict, items: list[EvalItem], store: JsonlStore,
               on_done) -> list[GenerationRecord]:
    policy.load()  # a model that cannot load stops the phase before any record
    out = []
    for start in range(0, len(items), cfg.batch_size):
        records, batch = _unasked(cfg, generator, items[start:start + cfg.batch_size])
        answers = policy.generate([policy_request(cfg, item) for item in batch])  # a failed batch: errors, run goes on
        records += [make_record(cfg, generator, item, answer.text, answer.error, answer.attempts)
                    for item, answer in zip(batch, answers)]
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
