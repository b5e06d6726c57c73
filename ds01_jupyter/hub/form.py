"""The spawn options form: project (or a new one), its image, and a GPU count within the user's limits."""

from __future__ import annotations

from html import escape

from ..core.names import check_project_name
from ..core.requests import MAX_GPUS, whole_number_text

NEW = "__new__"


def render(projects: list[dict], selected: str, max_gpus: int, default_gpus: int, notices: list[str],
           frameworks: tuple[str, ...] | list[str] = ()) -> str:
    """HTML for JupyterHub's spawn page. ``projects``: dicts with name, image (tag or None), running."""
    options = []
    if selected and selected not in {p["name"] for p in projects}:
        options.append(f'<option value="{escape(selected)}" selected>{escape(selected)} (new project)</option>')
    for p in projects:
        image = p["image"] or "image built on first start"
        state = ", running" if p.get("running") else ""
        chosen = " selected" if p["name"] == selected else ""
        options.append(
            f'<option value="{escape(p["name"])}"{chosen}>{escape(p["name"])} ({escape(image)}{state})</option>'
        )
    options.append(f'<option value="{NEW}"{" selected" if not projects else ""}>New project...</option>')
    gpus = "".join(
        f'<option value="{n}"{" selected" if n == default_gpus else ""}>{n}</option>' for n in range(max_gpus + 1)
    )
    notes = "".join(f'<div class="alert alert-info">{escape(n)}</div>' for n in notices)
    fallbacks = '<option value="" selected>none: build the project\'s image</option>' + "".join(
        f'<option value="{escape(f)}">{escape(f)}</option>' for f in frameworks)
    return f"""{notes}
<div class="form-group">
  <label for="ds01-project">Project</label>
  <select class="form-control" name="project" id="ds01-project">{"".join(options)}</select>
</div>
<div class="form-group">
  <label for="ds01-new-project">New project name (when "New project..." is chosen)</label>
  <input class="form-control" name="new_project" id="ds01-new-project" placeholder="my-project"
         pattern="[a-z0-9]+([-_][a-z0-9]+)*">
</div>
<div class="form-group">
  <label for="ds01-gpus">GPUs (your limit allows {max_gpus})</label>
  <select class="form-control" name="gpus" id="ds01-gpus">{gpus}</select>
</div>
<div class="form-group">
  <label for="ds01-framework">Framework image, when the project's image is missing</label>
  <select class="form-control" name="framework" id="ds01-framework">{fallbacks}</select>
</div>
<p class="help-block">The project's folder is mounted at /workspace; everything else in the
container is lost when the server stops, except work files, which are rescued into
the project's .rescued/ folder.</p>
"""


def parse(formdata: dict) -> dict:
    """user_options from the posted form (each value is a list of strings)."""
    first = {k: (v[0] if isinstance(v, list) and v else v) for k, v in formdata.items()}
    options: dict = {}
    project = (first.get("project") or "").strip()
    if project == NEW:
        project = (first.get("new_project") or "").strip()
        options["create"] = True
    if project:
        options["project"] = check_project_name(project)
    framework = (first.get("framework") or "").strip()
    if framework:
        options["framework"] = framework  # checked against the configured ones at start
    gpus = whole_number_text(first.get("gpus"), "gpus", MAX_GPUS)  # the core's check, as every front end's
    if gpus is not None:
        options["gpus"] = gpus
    return options
