"""Exchange pages: export, import (preview, then apply), log, conflicts, quarantine, receipts."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _

from reviewapp import get_catalogue, get_store, policy
from reviewapp.accounts.access import allow, current_user
from reviewapp.accounts.views import who
from reviewapp.exchange import keys, operations
from reviewapp.exchange.bundle import BundleError, read_bundle
from reviewapp.formdefs import current_language

bp = Blueprint("exchange", __name__, url_prefix="/exchange", template_folder="templates")

SHA = re.compile(r"^[0-9a-f]{64}$")


def _data_dir() -> Path:
    return Path(current_app.config["DATA_DIR"])


def _incoming() -> Path:
    folder = _data_dir() / "incoming"
    folder.mkdir(exist_ok=True)
    return folder


def _who() -> str:
    return who()


@bp.get("/")
@allow("analyst", "admin")
def index():
    store = get_store()
    node = store.find_node()
    return render_template(
        "exchange/index.html",
        imports=store.list_imports()[:5],
        exports=store.list_exports()[:5],
        open_conflicts=len(store.list_conflicts("open")),
        quarantined=len(store.list_quarantine()),
        sources=operations.list_source_nodes(store, node),
        key=keys.load_node_key(_data_dir(), store),
        choices=get_catalogue().choices,
    )


@bp.post("/export")
@allow("analyst", "admin")
def export():
    store, catalogue = get_store(), get_catalogue()
    node = store.find_node()
    form = request.form
    try:
        options = operations.ExportOptions(
            level=form.get("level", "national"),
            destination=form.get("destination", "").strip()[:120],
            unsent_only=form.get("unsent") == "yes",
            since=operations.parse_date(form.get("since", "").strip() or None),
            anonymise=policy.export_anonymised(current_user(), form.get("anonymise") == "yes"),
            max_sensitivity=form.get("max_sensitivity", "strictly_confidential"),
        )
        records, excluded = operations.select_for_export(store, catalogue, node, options)
    except ValueError:
        flash(_("Check the export options: a date is written YYYY-MM-DD."), "error")
        return redirect(url_for("exchange.index"))
    if not records:
        flash(_("Nothing to export: no submitted review matches these options."), "warning")
        return redirect(url_for("exchange.index"))
    stamp = operations.now()[:16].replace(":", "").replace("T", "-")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", node["name"]).strip("-")[:40] or "node"
    name = f"reviews-{slug}-{stamp}.drb"
    folder = Path(tempfile.mkdtemp(dir=_data_dir()))
    operations.export_bundle(
        store,
        catalogue,
        node,
        keys.load_node_key(_data_dir(), store),
        folder / name,
        options,
        _who(),
    )
    response = send_file(
        folder / name, as_attachment=True, download_name=name, mimetype="application/zip"
    )
    response.call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    return response


@bp.post("/import")
@allow("analyst", "admin")
def upload():
    """Stage uploaded bundles and show what importing them would do."""
    files = [f for f in request.files.getlist("bundles") if f and f.filename]
    if not files:
        flash(_("Choose one or more bundle files (.drb) to import."), "warning")
        return redirect(url_for("exchange.index"))
    previews = []
    for upload in files:
        staged = (
            _incoming() / f"upload-{hashlib.sha256(upload.filename.encode()).hexdigest()[:8]}.part"
        )
        upload.save(staged)
        with open(staged, "rb") as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
        path = _incoming() / f"{sha}.drb"
        staged.replace(path)
        try:
            plan = operations.plan_import(
                get_store(), get_catalogue(), read_bundle(path), upload.filename
            )
        except BundleError as exc:
            previews.append({"file": upload.filename, "refused": str(exc)})
            path.unlink(missing_ok=True)
            continue
        previews.append({**plan.summary(), "file": upload.filename})
    refused = any("refused" in p for p in previews)
    page = render_template(
        "exchange/preview.html",
        previews=previews,
        may_trust=current_user()["role"] == "admin",
    )
    # A refusal is the client's file at fault: 422, with the page that explains it.
    return page, 422 if refused else 200


@bp.post("/import/apply")
@allow("analyst", "admin")
def apply():
    store, catalogue = get_store(), get_catalogue()
    trust = set(request.form.getlist("trust"))
    if trust and current_user()["role"] != "admin":
        abort(403)  # trusting a node's key is an administrator's decision
    applied, refused = 0, 0
    for sha in request.form.getlist("bundle"):
        if not SHA.match(sha):
            abort(400)
        path = _incoming() / f"{sha}.drb"
        if not path.exists():
            flash(_("A bundle to import was no longer waiting; upload it again."), "warning")
            refused += 1
            continue
        try:
            name = request.form.get(f"name-{sha}", path.name)[:200]
            plan = operations.plan_import(
                store, catalogue, read_bundle(path), name, trust=sha in trust
            )
            report = operations.apply_import(store, catalogue, plan, _who())
        except BundleError as exc:
            flash(f"{name}: {exc}", "error")
            refused += 1
            continue
        finally:
            path.unlink(missing_ok=True)
        if report.get("already_imported"):
            flash(
                _("%(file)s was already imported; nothing changed.", file=report["file_name"]),
                "warning",
            )
        else:
            applied += 1
    if applied:
        flash(_("%(n)s bundle(s) imported.", n=applied), "success")
    if refused and not applied:
        return imports(), 422
    return redirect(url_for("exchange.imports"))


@bp.get("/imports")
@allow("analyst", "admin")
def imports():
    store = get_store()
    return render_template(
        "exchange/imports.html", imports=store.list_imports(), exports=store.list_exports()
    )


@bp.get("/conflicts")
@allow("analyst", "admin")
def conflicts():
    return render_template("exchange/conflicts.html", conflicts=get_store().list_conflicts())


@bp.get("/conflicts/<conflict_id>")
@allow("analyst", "admin")
def conflict(conflict_id: str):
    store, catalogue = get_store(), get_catalogue()
    item = store.get_conflict(conflict_id)
    held = store.get_review(item["review_id"])
    incoming = item["incoming"]
    form = catalogue.get(held["form_id"], held["form_version"])
    lang = current_language()
    differences = []
    for fdef in form.fields.values():
        if fdef.personal and not policy.may_see_personal(current_user(), held):
            continue
        a, b = held["answers"].get(fdef.name), incoming["answers"].get(fdef.name)
        if a != b:
            differences.append((fdef, a, b))
    return render_template(
        "exchange/conflict.html",
        conflict=item,
        held=held,
        incoming=incoming,
        differences=differences,
        lang=lang,
    )


@bp.post("/conflicts/<conflict_id>/resolve")
@allow("analyst", "admin")
def resolve(conflict_id: str):
    keep = request.form.get("keep")
    if keep not in ("held", "incoming"):
        abort(400)
    resolved = operations.resolve_conflict(get_store(), conflict_id, keep, _who())
    flash(_("Conflict resolved; the other revision is kept in the review's history."), "success")
    return redirect(url_for("reviews.detail", review_id=resolved["review_id"]))


@bp.get("/quarantine")
@allow("analyst", "admin")
def quarantine():
    return render_template("exchange/quarantine.html", entries=get_store().list_quarantine())


@bp.post("/receipts/make")
@allow("analyst", "admin")
def make_receipt():
    store = get_store()
    node = store.find_node()
    for_node = request.form.get("for_node", "")
    if for_node not in {s["id"] for s in operations.list_source_nodes(store, node)}:
        abort(400)
    data = operations.make_receipt(
        store, node, keys.load_node_key(_data_dir(), store), for_node, _who()
    )
    folder = Path(tempfile.mkdtemp(dir=_data_dir()))
    path = folder / f"receipt-{for_node[:8]}-{operations.now()[:10]}.json"
    path.write_bytes(data)
    response = send_file(
        path, as_attachment=True, download_name=path.name, mimetype="application/json"
    )
    response.call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    return response


@bp.post("/receipts/apply")
@allow("analyst", "admin")
def apply_receipt():
    upload = request.files.get("receipt")
    if not upload or not upload.filename:
        flash(_("Choose a receipt file to apply."), "warning")
        return redirect(url_for("exchange.index"))
    store = get_store()
    trust = request.form.get("trust_fingerprint", "").strip()[:64]
    if trust and current_user()["role"] != "admin":
        abort(403)  # trusting a node's key is an administrator's decision
    try:
        result = operations.apply_receipt(
            store,
            store.find_node(),
            upload.read(),
            archive=request.form.get("archive") == "yes",
            who=_who(),
            trust=trust,
        )
    except operations.ReceiptError as exc:
        flash(str(exc), "error")
        return index(), 422
    flash(
        _(
            "%(delivered)s review(s) confirmed delivered to %(name)s; %(archived)s archived; %(unmatched)s not matched here.",
            delivered=result["delivered"],
            name=result["issuer"]["name"],
            archived=result["archived"],
            unmatched=result["unmatched"],
        ),
        "success",
    )
    return redirect(url_for("exchange.index"))
