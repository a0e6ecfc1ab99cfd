"""The gallery's web page: ``index.html`` with one captioned figure per technique.

Written atomically (a temporary file renamed into place) after every section, so
a reader — or a browser refreshing during the run — always sees a whole page.
"""
import html
import os
import tempfile

__all__ = ["write_page"]


def _readable(path):
    """Temporary files are private (0600); a gallery is for reading: the umask's usual mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}
figure{display:inline-block;vertical-align:top;margin:.6em;max-width:560px}
figure img{max-width:560px;height:auto;border:1px solid #ddd}
figcaption{font-size:.8em;line-height:1.35}
code{background:#f4f4f4;padding:0 .2em}.warn{color:#8a5a00}.error,.failed{color:#b00}
.skipped{color:#666}nav a{margin-right:.6em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}"""


def _figure_html(f):
    e = html.escape
    rows = [f"<b>{e(f['technique'])}</b>" + (f" — {e(f['model'])}" if f["model"] else "")]
    if f["formula"]:
        rows.append(f"<code>{e(f['formula'])}</code>")
    if f["paper"]:
        rows.append(f"<i>{e(f['paper'])}</i>")
    if f["params"]:
        rows.append(f"parameters: {e(f['params'])}")
    if f["extra"]:
        rows.append(e(f["extra"]))
    rows.append(f"time: {f['seconds']:.1f} s")
    return (f'<figure><img src="{e(f["file"])}" alt="{e(f["technique"])}">'
            f"<figcaption>{'<br>'.join(rows)}</figcaption></figure>")


def write_page(result, ctx, log, done):
    """Write ``<out>/index.html`` (and ``gallery.log``) for the sections run so far; ``done``
    is False while the run goes on (the page says so)."""
    e = html.escape
    out = result.out
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>minicnn gallery</title>", f"<style>{CSS}</style></head><body>",
             "<h1>minicnn gallery</h1>",
             f"<p>{'quick' if ctx.quick else 'full'} run · backend {e(ctx.backend)} · seed "
             f"{ctx.seed} · {result.seconds:.0f} s" + ("" if done else " · <b>running…</b>")
             + "</p>"]
    models = [ctx._cache.get(k) for k in ("small", "photo")]
    models = [m.caption() for m in models if callable(getattr(m, "caption", None))]
    if models:
        parts.append("<p>models: " + e("; ".join(models)) + "</p>")
    for level, text in result.notes:
        parts.append(f'<p class="{level}">{e(text)}</p>')
    if ctx.left_out:
        parts.append(f"<p>--quick leaves out the costlier ImageNet-model figures of: "
                     f"{e(', '.join(ctx.left_out))} (run without --quick for them)</p>")
    parts.append("<nav>" + "".join(f'<a href="#{s["name"]}">{e(s["title"])}</a>'
                                   for s in result.sections) + "</nav>")
    for s in result.sections:
        parts.append(f'<h2 id="{s["name"]}">{e(s["title"])} '
                     f'<small>({s["seconds"]:.1f} s)</small></h2>')
        if s["status"] != "ok":
            parts.append(f'<p class="{s["status"]}">{s["status"]}: {e(s["reason"])}</p>')
        for f in s["figures"]:
            if f["status"] == "ok" and (out / f["file"]).is_file():
                parts.append(_figure_html(f))
            elif f["status"] != "ok":
                parts.append(f'<p class="{f["status"]}">{e(f["technique"])}: {f["status"]} — '
                             f'{e(f["reason"])}</p>')
    parts.append("</body></html>")
    _atomic_write(out / "index.html", "\n".join(parts) + "\n")
    if log or (out / "gallery.log").exists():
        _atomic_write(out / "gallery.log", "\n".join(log) + "\n")
