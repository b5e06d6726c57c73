"""The ``ds01`` command and the DS01 commands users already know.

``container-deploy NAME`` is the same as ``ds01 container-deploy NAME``; every
verb uses the same core, prints a table (or ``--json``) and exits 0 on
success, 1 on an error it explains, 2 on a usage mistake.
"""

from __future__ import annotations

import argparse
import os
import sys

# Nothing of the core but its errors at start-up (issue 19: `ds01 --help` in under 100 ms; the settings' dataclass
# alone costs 25 ms): a verb imports the core once parsed, the core docker-py only when the engine connects, and
# the helpers below import theirs on first call.
from ..core.errors import DS01Error, EngineUnavailable, Forbidden, UnsavedWork
from . import output as out

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core import DS01


def _lazy(module: str, name: str):
    """``module.name``, a function imported on its first call."""

    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(module, __package__), name)(*args, **kwargs)

    call.__name__ = name
    return call


format_size = _lazy("..core.limits", "format_size")
parse_size = _lazy("..core.limits", "parse_size")
check_notebook = _lazy("..core.notebook_check", "check_notebook")
report_lines = _lazy("..core.processes", "report_lines")
write_spec = _lazy("..kernels.specs", "write_spec")
remove_spec = _lazy("..kernels.specs", "remove_spec")
connection = _lazy("..service.client", "connection")
connection_line = _lazy("..service.client", "connection_line")


def _core() -> DS01:
    """ds01d's client when its socket is there (users need no Docker access), else the engine directly (a core
    for this one command)."""
    from ..core import DS01
    from ..service.client import connect

    return connect(direct=lambda: DS01(lasting=False))


# -- verbs -----------------------------------------------------------------------
def cmd_project_init(core, user, args):
    result = core.projects.init(user, args.name)
    core.images.dockerfile(user, args.name)  # so users find and edit it right away
    if args.json:
        return out.emit_json(result.to_dict())
    project = result.project
    if result.created:
        print(f"Created project {project.name} at {project.path}")
    elif result.added:
        print(f"Added the missing parts of the layout to {project.path} (nothing was overwritten):")
        for item in result.added:
            print(f"  + {item}")
    else:
        print(f"{project.path} already has the whole layout; nothing was changed.")
    print(f"  {result.git}")
    print(f"  Dockerfile: {core.images.dockerfile(user, args.name, create=False)}")
    print(f"  Next: container-deploy {project.name}")


def cmd_project_list(core, user, args):
    projects = core.projects.list(user)
    if args.json:
        return out.emit_json([p.to_dict() for p in projects])
    print(
        out.table(
            [p.to_dict() for p in projects],
            [("name", "PROJECT"), ("path", "PATH")],
            "(no projects yet: ds01 project-init NAME)",
        )
    )


def cmd_image_create(core, user, args):
    image = core.images.build(user, args.name, progress=out.progress)
    if args.json:
        return out.emit_json({"tag": core.images.tag(user, args.name), "id": image.id, "size": image.size})
    print(f"Built {core.images.tag(user, args.name)} ({format_size(image.size)})")


def cmd_image_list(core, user, args):
    images = core.cleanup.images(user)
    if args.json:
        return out.emit_json(images)
    rows = [{**i, "tag": ", ".join(i["tags"]) or "<none>", "size": format_size(i["size"]), "id": i["id"][7:19],
             "state": i["state"] + (f" (used by {', '.join(i['used_by'])})" if i["used_by"] else "")} for i in images]
    print(out.table(rows, [("project", "PROJECT"), ("tag", "IMAGE"), ("id", "ID"), ("size", "SIZE"),
                           ("created", "CREATED"), ("state", "STATE")]))
    if any(i["state"] != "current" and not i["used_by"] for i in images):
        print("Superseded and dangling images no container uses can go: ds01 image-prune")


def cmd_image_prune(core, user, args):
    result = core.cleanup.prune_images(user, confirm=args.yes)
    if args.json:
        return out.emit_json(result)
    items = result.get("deleted", result.get("would_delete", []))
    verb = "Deleted" if args.yes else "Would delete"
    for i in items:
        print(f"  {verb.lower()}: {', '.join(i['tags']) or i['id'][7:19]} ({i['project'] or '?'}, {i['state']}, "
              f"{format_size(i['size'])})")
    for i in result["failed"]:
        print(f"  kept: {i['id'][7:19]}: {i['problem']}")
    print(f"{verb} {len(items)} image(s)." + ("" if args.yes else " Run again with --yes to delete.")
          + " Images a container uses always stay.")


def cmd_clean(core, user, args):
    policy = _prune_policy(args, modes=False)
    plan = core.cleanup.clean(user, args.name, confirm=args.yes, **policy.rules())
    if args.json:
        return out.emit_json(plan)
    verb = "Deleted" if args.yes else "Would delete"
    for kind, (number, size) in sorted(plan["counts"].items()):
        print(f"  {kind}: {number} ({format_size(size)})")
    for item in plan["items"][:20]:
        print(f"    {item['path']}{'/' if item['folder'] else ''} ({format_size(item['bytes'])})")
    if len(plan["items"]) > 20 or plan["truncated"]:
        print("    ... (--json lists up to 200)")
    ckpt = plan["checkpoints"]
    if ckpt:
        gone = ckpt.get("deleted", ckpt.get("would_delete", []))
        print(f"  checkpoints: {len(gone)} ({format_size(ckpt['bytes'])}); `ds01 prune` shows why each goes or stays")
    print(
        f"{verb} {format_size(plan['bytes'])} in {args.name}."
        + ("" if args.yes else " Run again with --yes to delete.")
        + " .rescued/ and .git are never touched."
    )


def cmd_image_delete(core, user, args):
    using = 1 if any(c.project == args.name for c in core.containers.list(user)) else 0
    core.images.remove(user, args.name, containers_using=using)
    if args.json:
        return out.emit_json({"deleted": core.images.tag(user, args.name)})
    print(f"Deleted image {core.images.tag(user, args.name)}")


def cmd_base_image(core, user, args):
    image = core.images.ensure_base_image(progress=out.progress, rebuild=args.rebuild)
    if args.json:
        return out.emit_json({"image": core.settings.base_image, "id": image.id, "size": image.size})
    print(f"Base image {core.settings.base_image} is ready ({format_size(image.size)})")


def _kernel_spec(project: str, deployed: bool) -> None:
    """Write (deploy) or remove (retire) the project's kernel spec, as the server extension does.

    Never fails the verb."""
    try:
        if deployed:
            write_spec(project)
        else:
            remove_spec(project)
    except DS01Error as err:
        print(f"  note: kernel spec not {'written' if deployed else 'removed'}: {err}", file=sys.stderr)


def cmd_deploy(core, user, args):
    pinned = {"node": args.node} if args.node else {}  # only a cluster knows nodes
    result = core.containers.deploy(user, args.name, gpus=args.gpus, progress=out.progress, protected=args.protected,
                                    framework=args.framework, **pinned)
    _kernel_spec(args.name, deployed=True)
    if args.json:
        return out.emit_json(result.to_dict())
    c = result.container
    verb = "Deployed" if result.created else "Ready"
    print(f"{verb} {c.name} ({c.state}{', on node ' + c.node if c.node else ''}); /workspace is {c.workspace}")
    for notice in result.notices:
        print(f"  {notice}")
    if not args.background and sys.stdin.isatty() and sys.stdout.isatty():
        print("Opening a shell inside (leave with `exit`; the container keeps running). Use --background to skip.")
        _exec_interactive(core, user, args.name, [])


def cmd_start(core, user, args):
    _print_status(core.containers.start(user, args.name), args, "Started")


def cmd_stop(core, user, args):
    try:
        status, report = core.containers.stop_with_report(user, args.name, stop_processes=args.stop_processes,
                                                          progress=out.progress)
    except UnsavedWork as err:
        return _refused(err, args, "Not stopped")
    if args.json:
        return out.emit_json({**status.to_dict(), "processes": report})
    _print_status(status, args, "Stopped")
    for line in report_lines(report):
        print(f"  {line}")


def _refused(err, args, what: str) -> int:
    """A refusal to lose work: what would be lost (processes with their runtime, files with their size), exit 1."""
    if args.json:
        out.emit_json(err.to_dict())
        return 1
    print(f"{what}: {err.message}", file=sys.stderr)
    for finding in err.details.get("findings", [])[:20]:
        if finding["kind"] == "process":
            print(f"  {'process':12} {finding['path']}: {finding['detail']}", file=sys.stderr)
        else:
            print(f"  {finding['kind']:12} {format_size(finding['size']):>10}  {finding['path']}", file=sys.stderr)
    print(f"hint: {err.hint}", file=sys.stderr)
    return 1


def _caches_line(items: list[dict], verb: str) -> str | None:
    """One line naming the caches a rescue or retire left behind, with their size; None when there are none."""
    caches = [i for i in items if i.get("kind") == "cache"]
    if not caches:
        return None
    size = format_size(sum(int(i.get("size") or 0) for i in caches))
    paths = ", ".join(i["path"] for i in caches[:5]) + (f" and {len(caches) - 5} more" if len(caches) > 5 else "")
    noun = "cache" if len(caches) == 1 else "caches"
    return f"{verb} {len(caches)} {noun} ({size}): {paths}; use --include-caches to keep them"


def cmd_retire(core, user, args):
    mode = "rescue" if args.rescue else "discard" if args.discard else None
    if args.include_caches and args.discard:
        out.error(DS01Error("--include-caches keeps the caches and --discard drops everything: choose one."))
        return 2
    try:
        result = core.guard.retire(
            user,
            args.name,
            mode=mode,
            progress=out.progress,
            include_caches=args.include_caches,
            stop_processes=args.stop_processes,
        )
    except UnsavedWork as err:
        return _refused(err, args, "Not retired")
    _kernel_spec(args.name, deployed=False)
    if args.json:
        return out.emit_json(result)
    c = result["container"]
    print(f"Retired {c['name']}; the workspace {c['workspace']} stays.")
    for line in report_lines(result.get("processes")):
        print(f"  {line}")
    if result["rescued"]:
        r = result["rescued"]
        print(f"  Rescued {r['files']} files ({format_size(r['bytes'])}) into {r['folder']}")
    if result["discarded"]:
        print(f"  Discarded {result['discarded']} findings, as asked.")
    line = _caches_line(result.get("dropped_caches") or [], "Skipped" if result["rescued"] else "Dropped")
    if line:
        print(f"  {line}")


def cmd_audit(core, user, args):
    audit = core.guard.audit(user, args.name)
    if args.add_requirements:
        added = core.guard.add_requirements(user, args.name, audit)
        print(f"Added to requirements.txt: {', '.join(added)}" if added else "requirements.txt already lists them.",
              file=sys.stderr)
    if args.json:
        out.emit_json([f.to_dict() for f in audit.findings])
    else:
        rows = [
            {
                **f.to_dict(),
                "size": format_size(f.size),
                "where": f"{f.notebook} [{f.cell}]" if f.notebook else f.source,
                "what": f.detail if f.kind == "environment" else ("checkpoint" if f.checkpoint else f.detail),
            }
            for f in audit.findings
        ]
        print(
            out.table(
                rows,
                [("kind", "KIND"), ("size", "SIZE"), ("path", "PATH"), ("where", "FROM"), ("what", "NOTE")],
                "Nothing outside /workspace would be lost.",
            )
        )
        for note in audit.notes:
            print(f"note: {note}")
        running = [f for f in audit.at_risk if f.kind == "process"]
        if len(running) < len(audit.at_risk):
            print(f"{len(audit.at_risk) - len(running)} finding(s) at risk. Keep them: container-retire {args.name} "
                  f"--rescue (or ds01 rescue {args.name} now).", file=sys.stderr)
        if running:
            print(f"{len(running)} process(es) running: retire and stop refuse to kill them; let them finish, or add "
                  "--stop-processes (SIGTERM, a grace period, then SIGKILL).", file=sys.stderr)
    return 3 if audit.at_risk else 0


def cmd_rescue(core, user, args):
    result = core.guard.rescue(user, args.name, progress=out.progress, include_caches=args.include_caches)
    if args.json:
        return out.emit_json(result.to_dict())
    print(f"Rescued {result.files} files ({format_size(result.bytes)}) into {result.folder}")
    for item in result.skipped:
        if item.get("kind") != "cache":
            print(f"  skipped {item['path']}: {item['why']}")
    line = _caches_line(result.skipped, "Skipped")
    if line:
        print(line)


def _metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _checkpoint_mark(c: dict) -> str:
    if c["state"] == "in_progress":
        return f"IN PROGRESS: {c['problem']}"
    if not c["complete"]:
        return f"INCOMPLETE: {c['problem']}"
    marks = ["latest" if c["is_latest"] else "", "best" if c["is_best"] else "",
             f"(role: {c['role']})" if c["role"] and not (c["role"] == "best" and c["is_best"]) else "",
             c.get("warning", "")]
    return " ".join(m for m in marks if m)


def cmd_checkpoints(core, user, args):
    data = core.checkpoints(user, args.name, metric=args.metric, mode=args.mode)
    if args.json:
        return out.emit_json(data)
    rows = [{**c, "run": c["run"] or ".", "checkpoint": c["name"], "size": format_size(c["size"]),
             "epoch": "" if c["epoch"] is None else f"{c['epoch']:g}", "metrics": _metrics_text(c["metrics"]),
             "mark": _checkpoint_mark(c)} for c in data["checkpoints"]]
    columns = [("checkpoint", "CHECKPOINT"), ("epoch", "EPOCH"), ("step", "STEP"), ("metrics", "METRICS"),
               ("size", "SIZE"), ("mark", "")]
    if any(r["run"] != "." for r in rows):
        columns.insert(0, ("run", "RUN"))
    print(out.table(rows, columns, f"No checkpoints in {data['directory']}."))
    if data["checkpoints"]:
        best = f"; best by {data['metric']} ({data['mode']}): {data['best']}" if data["metric"] and data["best"] else ""
        print(f"Resume from: {data['latest'] or 'nothing complete yet'}{best}")
    for problem in data.get("problems", []):
        print(f"Note: {problem}")


def _prune_policy(args, modes: bool = True):
    """The retention policy of the options, checked as the REST API and ds01d check it (core/requests.py)."""
    from ..core.requests import PrunePolicy

    given = {"keep_last": args.keep_last, "keep_best": args.keep_best, "metric": args.metric,
             "older_than_days": args.older_than_days}
    if modes:
        given["mode"] = args.mode
    return PrunePolicy.from_request(given, modes=modes)


def cmd_prune(core, user, args):
    if args.keep_last is None and args.keep_best is None and args.older_than_days is None:
        out.error(DS01Error("Say what to keep.", hint="e.g. --keep-last 3, or --keep-best 1 --metric val_loss"))
        return 2
    policy = _prune_policy(args)
    result = core.prune_checkpoints(user, args.name, confirm=args.yes, **policy.rules())
    if args.json:
        return out.emit_json(result)
    items = result.get("deleted", result.get("would_delete", []))
    verb = "Deleted" if args.yes else "Would delete"
    for c in items:
        print(f"  {verb.lower()}: {c['relpath']} ({format_size(c['size'])}): {c['reason']}")
    for c in result["kept"]:
        print(f"  keep: {c['relpath']}: {c['reason']}")
    print(
        f"{verb} {len(items)} checkpoint(s), {format_size(result['bytes'])}."
        + ("" if args.yes else " Run again with --yes to delete.")
    )


WHERE_LABELS = {"workspace": "WORKSPACE", "rescued": "RESCUED", "container": "AT RISK", "retired": "RETIRED"}


def cmd_where(core, user, args):
    data = core.where(user, args.name, args.pattern)
    if args.json:
        return out.emit_json(data)
    for m in data["matches"]:
        size = f" ({format_size(m['size'])})" if isinstance(m.get("size"), int) else ""
        print(f"{WHERE_LABELS[m['where']]:<9} {m['path']}{size}: {m['how']}")
        if m.get("host_path"):
            print(f"          on the host: {m['host_path']}")
    if not data["matches"]:
        print(f"No file matching {args.pattern!r} in {args.name}'s workspace, rescues, container or retired "
              "containers.")
    if data["truncated"]:
        print(f"(only the first {len(data['matches'])} matches; narrow the pattern)")
    for note in data["notes"]:
        print(f"Note: {note}")
    return 0 if data["matches"] else 1


def cmd_usage(core, user, args):
    data = core.storage_use(user, larger_than=args.larger_than)
    if args.json:
        return out.emit_json(data)
    rows = [
        {
            "project": name,
            "size": format_size(p["bytes"]),
            "files": p["files"],
            "checkpoints": format_size(p["checkpoint_bytes"]),
            "image": format_size(p["image_bytes"]) if p["image_bytes"] else "-",
            "largest": f"{p['largest'][0][0]} ({format_size(p['largest'][0][1])})" if p["largest"] else "-",
        }
        for name, p in data["projects"].items()
    ]
    print(
        out.table(
            rows,
            [
                ("project", "PROJECT"),
                ("size", "SIZE"),
                ("files", "FILES"),
                ("checkpoints", "CHECKPOINTS"),
                ("image", "IMAGE"),
                ("largest", "LARGEST FILE"),
            ],
        )
    )
    quota = format_size(data["quota_bytes"]) if data["quota_bytes"] is not None else "no quota"
    print(
        f"Workspace: {format_size(data['total_bytes'])} of {quota}" + ("  (OVER QUOTA)" if data["over_quota"] else "")
    )
    images = data.get("images")
    if images and images["count"]:
        print(f"Images: {format_size(images['total_bytes'])} in {images['count']} "
              f"({format_size(images['unique_bytes'])} unique, {format_size(images['shared_bytes'])} shared "
              "with the base image, counted once)")
    if data.get("disk"):
        disk = data["disk"]
        print(f"Disk: {format_size(disk['free_bytes'])} free of {format_size(disk['total_bytes'])} ({disk['path']})")
    if "large_files" in data:
        print(f"Files of {format_size(data['larger_than'])} or more:" if data["large_files"] else
              f"No file of {format_size(data['larger_than'])} or more.")
        for project, path, size in data["large_files"]:
            print(f"  {format_size(size):>10}  {project}/{path}")


def cmd_check_notebook(core, user, args):
    found = check_notebook(args.path)
    if args.json:
        return out.emit_json([f.to_dict() for f in found])
    rows = [{**f.to_dict(), "where": f"cell {f.cell + 1}, line {f.line}"} for f in found]
    print(out.table(rows, [("where", "WHERE"), ("path", "PATH"), ("snippet", "CODE")], "No paths outside /workspace."))
    return 3 if found else 0


def cmd_run(core, user, args):
    command = args.command or []
    if command and command[0] == "--":
        command = command[1:]
    # A stopped or crashed container is started first, through container-start's path (its GPU check).
    core.containers.ensure_running(user, args.name, progress=out.progress)
    return _exec_interactive(core, user, args.name, command)


def _exec_interactive(core, user, project, command):
    """Become the engine's client attached to the command: stdin passes through (pipes, heredocs), the exit
    code is the command's; a terminal only when stdin is one (and stdout too, for a command: a terminal's
    CRLF line ends would corrupt output going to a file or a pipe)."""
    tty = sys.stdin.isatty() and (not command or sys.stdout.isatty())
    try:
        argv = core.containers.interactive(user, project, command or ["/bin/bash"], tty=tty)
    except EngineUnavailable as err:  # no docker client: one command still runs through the API, without stdin
        if not command:
            raise
        print(f"note: {err.message} Running without passing stdin.", file=sys.stderr)
        code, data = core.containers.exec(user, project, command)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return code or 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def cmd_list(core, user, args):
    statuses = core.containers.list(user)
    if args.json:
        return out.emit_json([s.to_dict() for s in statuses])
    rows = [
        {
            **s.to_dict(),
            "gpus": ",".join(g[:12] for g in s.gpus) or "-",
            "uptime": out.human_duration(s.uptime_seconds),
            "note": "image rebuilt: redeploy to use it" if s.stale_image else
            (f"on the {s.fallback} fallback image" if s.fallback else (s.error or "")),
            "node": s.node or "-",
        }
        for s in statuses
    ]
    print(
        out.table(
            rows,
            [
                ("project", "PROJECT"),
                ("name", "CONTAINER"),
                ("state", "STATE"),
                *([("node", "NODE")] if any(st.node for st in statuses) else []),  # a cluster's
                ("gpus", "GPU"),
                ("uptime", "UP"),
                ("note", "NOTE"),
            ],
            "(no containers: container-deploy NAME)",
        )
    )


def cmd_status(core, user, args):
    if args.name:
        return _print_status(core.containers.status(user, args.name), args, None)
    containers = {c.project: c for c in core.containers.list(user)}
    git = {p.name: core.git_state(user, p.name) for p in core.projects.list(user)}
    rows = []
    # A container whose project folder was deleted is listed too (its workspace is missing).
    for name in sorted({p.name for p in core.projects.list(user)} | set(containers)):
        c = containers.get(name)
        rows.append(
            {
                "project": name,
                "state": c.state if c else "no container",
                "summary": _state_line(c) if c else "no container",
                "gpus": ",".join(c.gpus) if c and c.gpus else "-",
                "holds_gpu": bool(c and c.holds_gpu),
                "uptime": out.human_duration(c.uptime_seconds) if c else "-",
                "stale_image": bool(c and c.stale_image),
                "workspace_state": c.workspace_state if c else "",
                "git": git.get(name, {}).get("summary", "-"),
            }
        )
    if args.json:
        return out.emit_json({"projects": rows, "usage": core.containers.limits_and_use(user),
                              "connection": connection(core)})
    print(
        out.table(
            rows,
            [("project", "PROJECT"), ("summary", "STATE"), ("gpus", "GPU"), ("uptime", "UP"), ("git", "GIT")],
            "(no projects yet: ds01 project-init NAME)",
        )
    )
    print(connection_line(connection(core)))


WORKSPACE_NOTES = {
    "missing": "workspace missing",
    "replaced": "workspace replaced (the container still has the deleted folder)",
}


def _state_line(status) -> str:
    """"running", "stopped", "crashed (exit 137, out of memory)", with ", workspace missing" when it is, the fallback
    image it runs on ("running on the pytorch fallback image") and a workspace the user cannot write."""
    line = status.summary or status.state
    if status.fallback:
        line += f" on the {status.fallback} fallback image"
    notes = [WORKSPACE_NOTES.get(status.workspace_state)]
    if status.unwritable:
        notes.append("workspace not writable")
    return ", ".join([line] + [n for n in notes if n])


def _print_status(status, args, verb):
    if args.json:
        return out.emit_json(status.to_dict())
    head = f"{verb} {status.name}" if verb else status.name
    print(f"{head}: {_state_line(status)}")
    for key in ("project", "node", "image", "workspace", "gpus", "started_at", "finished_at", "exit_code", "error"):
        value = getattr(status, key)
        if key == "finished_at" and status.running:
            continue
        if value not in (None, "", []):
            if key == "gpus":
                value = ", ".join(value) + ("" if status.holds_gpu else " (released: no longer held)")
            print(f"  {key}: {value}")
    if status.workspace_state == "missing":
        print(f"  note: the workspace folder is gone; `container-retire {status.project} --rescue` keeps what the "
              "container holds (in a new project folder's .rescued/)")
    elif status.workspace_state == "replaced":
        print(f"  note: the workspace folder was made again while the container ran; retire it (`container-retire "
              f"{status.project}`, or with --rescue) and deploy again")
    if status.stale_image:
        print("  note: the image was rebuilt since this container was deployed; retire and deploy to use it")
    if status.fallback:
        print(f"  note: it runs on the {status.fallback} framework image, not the project's own; build that "
              f"(`image-create {status.project}`), then retire and deploy to use it")
    if status.unwritable:
        where = ", ".join("the workspace" if u == "." else f"{u}/" for u in status.unwritable)
        print(f"  note: you cannot write {where}; fix: `sudo chown -R $(whoami):$(whoami) {status.workspace}`")
    if status.log_tail:
        print("  last output:")
        for line in status.log_tail:
            print(f"    {line}")


def cmd_logs(core, user, args):
    for line in core.containers.logs(user, args.name, tail=args.tail, follow=args.follow):
        print(line, flush=args.follow)


def cmd_check_limits(core, user, args):
    usage = core.containers.limits_and_use(user)
    if args.json:
        return out.emit_json(usage)
    readable = usage["limits_readable"]
    print(f"Limits of {user.name} (from {readable.pop('source')}):")
    for key, value in readable.items():
        print(f"  {key:26} {value}")
    for note in usage["limits"].get("notes") or ():
        print(f"  note: {note}")
    max_c = usage["limits"]["max_containers_per_user"]
    max_g = usage["limits"]["max_mig_instances"]
    if usage["containers"] is None:
        print(f"Current use: unknown, {usage['engine']['reason']}")
        return
    print("Current use:")
    of = max_c if max_c is not None else "unlimited"
    print(f"  containers                 {usage['containers']} of {of} ({usage['running']} running)")
    print(f"  GPU slots                  {usage['gpu_slots']} of {max_g if max_g is not None else 'unlimited'}")
    for holder in usage.get("gpu_holders") or ():  # the same holders deploy counts against the limit
        kept = "" if holder["state"] == "running" else ", kept after its stop (gpu_hold_after_stop)"
        print(f"    {holder['project']:24} {holder['slots']} slot(s) ({holder['state']}{kept})")


def cmd_gpus(core, user, args):
    data = core.gpu_inventory()
    if args.json:
        return out.emit_json(data)
    rows = [
        {
            "index": g["index"],
            "name": g["name"],
            "uuid": g["uuid"],
            "memory": f"{format_size(g['memory_used'])} / {format_size(g['memory_total'])}",
            "util": "-" if g["utilization"] is None else f"{g['utilization']}%",
            "holder": f"{g['holder']['user']}/{g['holder']['project']}" if g["holder"] else "free",
        }
        for g in data["gpus"]
    ]
    print(
        out.table(
            rows,
            [
                ("index", "#"),
                ("name", "NAME"),
                ("uuid", "UUID"),
                ("memory", "MEMORY"),
                ("util", "UTIL"),
                ("holder", "HELD BY"),
            ],
            data["notice"] or "(no GPUs)",
        )
    )


def cmd_nodes(core, user, args):
    data = core.nodes()
    if args.json:
        return out.emit_json(data)
    rows = [
        {"name": n["name"], "state": n["state"], "gpus": str(len(n["gpus"])), "free": str(len(n["free_gpus"])),
         "containers": str(n["containers"]), "role": "manager" if n["manager"] else "worker"}
        for n in data["nodes"]
    ]
    columns = [("name", "NODE"), ("state", "STATE"), ("role", "ROLE"), ("gpus", "GPUS"), ("free", "FREE"),
               ("containers", "CONTAINERS")]
    print(out.table(rows, columns, data.get("notice") or "(no nodes)"))


def cmd_settings(core, user, args):
    """Made without a core: it shows what the environment sets, also when a value there would be refused."""
    from ..core.settings import ADMIN_DIR, environment_settings
    from ..service.client import socket_path

    path = socket_path()
    listed = environment_settings()
    if path:  # ds01d reads none of them: nothing is refused either
        listed = [{**s, "refused": False} for s in listed]
    refused = [s["variable"] for s in listed if s["refused"]]
    if args.json:
        out.emit_json({"settings": listed, "ds01d": path})
        return 1 if refused else 0
    rows = [{"variable": s["variable"], "who": "the admin" if s["admin"] else "you",
             "value": (f"{s['value']} (refused: the admin's)" if s["refused"] else s["value"]) if s["value"]
             else f"(default) {'' if s['default'] is None else s['default']}"} for s in listed]
    print(out.table(rows, [("variable", "VARIABLE"), ("who", "WHO SETS IT"), ("value", "VALUE")]))
    if refused:
        print(f"Refused here: {', '.join(refused)} (the admin's): every other verb stops with an error while "
              f"{'it is' if len(refused) == 1 else 'they are'} set. Unset {'it' if len(refused) == 1 else 'them'}.")
    if path:
        print(f"ds01d answers at {path}: it reads none of these; its admin's file sets them all "
              "(DS01_SOCKET=none uses the engine directly, for a user who may use Docker).")
    print(f"The admin's settings are read from the environment only when ds01 runs as root or as the owner of "
          f"{ADMIN_DIR}; `ds01 settings --json` gives each one's help.")
    return 1 if refused else 0


def cmd_reap(core, user, args):
    decisions = core.reaper.run(user, dry_run=args.dry_run)
    if args.json:
        return out.emit_json([d.to_dict() for d in decisions])
    print(
        out.table(
            [d.to_dict() for d in decisions],
            [("container", "CONTAINER"), ("action", "ACTION"), ("reason", "WHY")],
            "(no running containers)",
        )
    )


# -- parser ------------------------------------------------------------------------
def _size_arg(text: str) -> int:
    try:
        value = parse_size(text)
    except DS01Error:
        value = None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 1G)")
    return value


def _gpu_count(text: str) -> int:
    """--gpus, checked by the core's rule for a GPU count (a usage mistake: exit 2)."""
    from ..core.requests import MAX_GPUS, whole_number_text

    try:
        return whole_number_text(text, "gpus", MAX_GPUS)
    except DS01Error as err:
        raise argparse.ArgumentTypeError(err.message) from None


ENVIRONMENT_HELP = (
    "environment: DS01_<SETTING> variables set your own settings (your folders, which must be yours, and your "
    "engine; DOCKER_HOST too). `ds01 settings` lists them with their values here, and the admin's, which the "
    "environment may not set (they would lift limits or bypass the GPU allocation lock). Through ds01d none is "
    "read: its admin's file sets them all."
)


STOP_PROCESSES_HELP = ("stop the processes running in the container first: SIGTERM, then SIGKILL after "
                       "stop_grace_seconds (DS01_STOP_GRACE_SECONDS, default 30); without it, running work is refused")


class _VerbParser:
    """A verb's sub-parser, made only when argparse first uses it (the verb was chosen, or its help asked).

    ``ds01 VERB`` then builds one sub-parser of 27, and ``ds01 --help`` none: the top-level listing needs only
    the verbs' names and help (issue 19: start-up time). Whatever argparse asks of it goes to the real one."""

    _parser: argparse.ArgumentParser | None = None

    def __init__(self, *, func, options=None, name_arg=True, name_optional=False, uses_core=True, **kwargs):
        self._func, self._options, self._kwargs = func, options, kwargs
        self._name_arg, self._name_optional, self._uses_core = name_arg, name_optional, uses_core

    def _build(self) -> argparse.ArgumentParser:
        if self._parser is None:
            p = argparse.ArgumentParser(**self._kwargs)
            if self._name_arg:
                p.add_argument("name", metavar="NAME", nargs="?" if self._name_optional else None, help="project name")
            if self._options:
                self._options(p)
            p.set_defaults(func=self._func, uses_core=self._uses_core)
            self._parser = p
        return self._parser

    def __getattr__(self, name: str):
        return getattr(self._build(), name)


# The options of the verbs that have any (besides NAME and --json).
def _image_prune_options(p):
    p.add_argument("--yes", action="store_true", help="really delete (default: only show what would go)")


def _clean_options(p):
    p.add_argument("--keep-last", type=int, help="also prune checkpoints, keeping the newest N of each run")
    p.add_argument("--keep-best", type=int, help="also prune checkpoints, keeping the best N by --metric")
    p.add_argument("--metric", help="metric for --keep-best")
    p.add_argument("--older-than-days", type=float, help="only checkpoints older than this")
    p.add_argument("--yes", action="store_true", help="really delete (default: only show what would go)")


def _base_image_options(p):
    p.add_argument("--rebuild", action="store_true", help="build it again even if it exists")


def _deploy_options(p):
    p.add_argument(
        "--gpus",
        "--gpu",
        type=_gpu_count,
        default=None,
        help="GPUs to allocate (default: 1 if the host has any, else CPU-only)",
    )
    p.add_argument("--background", action="store_true", help="do not open a shell inside after deploying")
    p.add_argument("--node", metavar="NODE", default=None,
                   help="in a cluster (engine 'swarm'): the node to put a new container on (`ds01 nodes`)")
    p.add_argument("--protected", action="store_true", help="exempt from idle and runtime limits (ds01.protected)")
    p.add_argument("--framework", metavar="NAME", default=None,
                   help="framework image (configured by the admin; `base` always) to run on when the project's "
                   "image is missing")


def _stop_options(p):
    p.add_argument("--stop-processes", action="store_true", help=STOP_PROCESSES_HELP)


def _retire_options(p):
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--rescue", action="store_true", help="copy files that would be lost into ~/workspace/NAME/.rescued/ first"
    )
    choice.add_argument(
        "--discard", action="store_true", help="retire even though files outside /workspace will be lost"
    )
    p.add_argument("--stop-processes", action="store_true", help=STOP_PROCESSES_HELP)
    p.add_argument("--include-caches", action="store_true",
                   help="copy caches outside /workspace (pip, Hugging Face, torch...) into .rescued/ too")


def _audit_options(p):
    p.add_argument("--add-requirements", action="store_true",
                   help="append pip packages installed by hand to the project's requirements.txt")


def _rescue_options(p):
    p.add_argument("--include-caches", action="store_true",
                   help="copy caches outside /workspace too (by default they are listed, with their sizes)")


def _checkpoints_options(p):
    p.add_argument("--metric", help="metric for 'best' (default: eval_loss, val_loss or loss, else the first found)")
    p.add_argument("--mode", choices=["min", "max"],
                   help="lower (min) or higher (max) is better (default: max for accuracy-like names, else min)")


def _prune_options(p):
    p.add_argument("--keep-last", type=int, help="keep the newest N complete checkpoints of each run")
    p.add_argument("--keep-best", type=int, help="keep the best N of each run by --metric")
    p.add_argument("--metric", help="metric for --keep-best")
    p.add_argument("--mode", choices=["min", "max"],
                   help="lower (min) or higher (max) is better (default: max for accuracy-like names, else min)")
    p.add_argument("--older-than-days", type=float, help="only delete checkpoints older than this")
    p.add_argument("--yes", action="store_true", help="really delete (default: only show what would go)")


def _where_options(p):
    p.add_argument("pattern", metavar="PATTERN", help="a file name or glob ('results.csv', '*.pt', '/tmp/*')")


def _usage_options(p):
    p.add_argument("--larger-than", type=_size_arg, metavar="SIZE", help="list files of at least SIZE (e.g. 1G)")


def _check_notebook_options(p):
    p.add_argument("path", metavar="NOTEBOOK", help="path of the .ipynb file")


def _run_options(p):
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS... (default: a shell)")


def _logs_options(p):
    p.add_argument("--tail", type=int, default=200, help="lines from the end (default 200)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new output")


def _reap_options(p):
    p.add_argument("--dry-run", action="store_true", help="only say what would be stopped")


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand's default must not undo `ds01 --json VERB`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    parser = argparse.ArgumentParser(
        prog="ds01", description="Projects, images and GPU containers on a shared DS01 server.",
        epilog=ENVIRONMENT_HELP,
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=_VerbParser)

    def verb(name, func, help, aliases=(), name_arg=True, name_optional=False, options=None, uses_core=True):
        sub.add_parser(name, help=help, description=help, parents=[common], aliases=list(aliases), func=func,
                       options=options, name_arg=name_arg, name_optional=name_optional, uses_core=uses_core)

    verb("project-init", cmd_project_init, "create a project with the recommended layout")
    verb("project-list", cmd_project_list, "list your projects", aliases=["projects"], name_arg=False)
    verb("image-create", cmd_image_create, "build the project's image from ~/dockerfiles/NAME.Dockerfile")
    verb("image-list", cmd_image_list, "list your images with their sizes and state (current, superseded, dangling)",
         name_arg=False)
    verb("image-prune", cmd_image_prune, "delete your superseded and dangling images no container uses "
         "(shows them unless --yes)", name_arg=False, options=_image_prune_options)
    verb("clean", cmd_clean, "the DS01 guide's cleanup of a project: tmp/, *.tmp, __pycache__, "
         ".ipynb_checkpoints, and checkpoints by a retention policy (shows the plan unless --yes)",
         options=_clean_options)
    verb("image-delete", cmd_image_delete, "delete the project's image")
    verb("base-image", cmd_base_image, "make sure the base image exists (built locally if needed)", name_arg=False,
         options=_base_image_options)
    verb("container-deploy", cmd_deploy, "create and start the project's container", aliases=["deploy"],
         options=_deploy_options)
    verb("container-start", cmd_start, "start the project's stopped container", aliases=["start"])
    verb("container-stop", cmd_stop, "stop the project's container (it can be started again)", aliases=["stop"],
         options=_stop_options)
    verb("container-retire", cmd_retire, "stop and remove the project's container; the workspace stays",
         aliases=["retire"], options=_retire_options)
    verb("audit", cmd_audit, "what the container holds outside /workspace (exit 3 when something is at risk)",
         options=_audit_options)
    verb("rescue", cmd_rescue, "copy what would be lost into ~/workspace/NAME/.rescued/<time>/ now",
         options=_rescue_options)
    verb("checkpoints", cmd_checkpoints,
         "the project's checkpoints by run: resume point and best marked, incomplete and in-progress flagged",
         options=_checkpoints_options)
    verb(
        "prune",
        cmd_prune,
        "delete old checkpoints by a retention policy (shows the plan, and why, unless --yes); "
        "never a role file (best-model.pt, last.ckpt), a run's resume point, or one changed in the last 5 minutes",
        options=_prune_options,
    )
    verb("where", cmd_where, "where are my files? a glob searched in the workspace, past rescues, the "
         "container (at risk) and retired containers' records, with how to get each back", options=_where_options)
    verb("usage", cmd_usage, "disk use per project: size, largest files, checkpoints, images (shared layers "
         "counted once), against the quota, and the disk's free space", name_arg=False, options=_usage_options)
    verb("check-notebook", cmd_check_notebook, "find paths outside /workspace in a notebook's code (exit 3 if any)",
         name_arg=False, options=_check_notebook_options)
    verb("container-run", cmd_run, "open a shell inside the container, or run one command", aliases=["run"],
         options=_run_options)
    verb("container-list", cmd_list, "list your containers", aliases=["list"], name_arg=False)
    verb("container-logs", cmd_logs, "show the container's output", aliases=["logs"], options=_logs_options)
    verb("status", cmd_status, "projects and their containers, or one project's container", name_optional=True)
    verb("check-limits", cmd_check_limits, "your limits and current use", name_arg=False)
    verb("gpus", cmd_gpus, "GPUs of this host, who holds them and what runs on them", name_arg=False)
    verb("nodes", cmd_nodes, "the cluster's nodes: state, GPUs, free GPUs, containers (engine 'swarm')",
         name_arg=False)
    verb("reap", cmd_reap, "stop your containers that are idle or past their runtime", name_arg=False,
         options=_reap_options)
    verb("settings", cmd_settings, "the DS01_<SETTING> variables: their values here, defaults, and which are the "
         "admin's", name_arg=False, uses_core=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from ..core.users import User

        core = _core() if args.uses_core else None
        result = args.func(core, User.current(), args)
    except DS01Error as err:
        if args.json:
            out.emit_json(err.to_dict())
        out.error(err)
        return 1
    except OSError as err:  # the core's own errors say more; this keeps any left over readable
        mapped = (Forbidden if isinstance(err, PermissionError) else DS01Error)(
            f"{err.strerror or err}" + (f": {err.filename}" if err.filename else ""),
            hint="ds01 works only in your own workspace and files; check the path and its owner.",
        )
        if args.json:
            out.emit_json(mapped.to_dict())
        out.error(mapped)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


def _alias(verb: str):
    def run() -> None:
        sys.exit(main([verb, *sys.argv[1:]]))

    run.__name__ = verb.replace("-", "_")
    return run


def entry() -> None:
    sys.exit(main())


container_deploy = _alias("container-deploy")
container_start = _alias("container-start")
container_stop = _alias("container-stop")
container_retire = _alias("container-retire")
container_run = _alias("container-run")
container_list = _alias("container-list")
image_create = _alias("image-create")
project_init = _alias("project-init")
check_limits = _alias("check-limits")
