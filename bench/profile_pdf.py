"""Profile PDF benchmark (issue 5): time to render a complete two-page medical profile, beside
WeasyPrint on a plain document of comparable content and on an empty page, and a cached re-send.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/record .venv/bin/python bench/profile_pdf.py

Drops and re-creates the database named in DATABASE_URL, migrates it, enrols one patient with
every profile section filled and 25 measures (tests/record/profiles.py), with local file storage
in a temporary folder. In one warm process (one untimed run first), it takes the median of
`-n` runs (default 10) of:

1. profile, uncached: `ensure_profile_pdf` with the cache emptied first (queries, content hash,
   WeasyPrint render, atomic store): what the Celery task does after a change;
2. profile, render only: `render_pdf(profile_data)`, WeasyPrint's share of (1);
3. comparable document: two A4 pages with headings, paragraphs, a 30-row table and one inline
   SVG chart, same font and page counters;
4. empty page;
5. cached re-send: `health_record.api.profile_pdf` on an unchanged profile (hash check + read).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import weasyprint

    return f"{os.cpu_count()} CPU ({cpu}), Python {sys.version.split()[0]}, WeasyPrint {weasyprint.__version__}"


def comparable_document() -> str:
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>Examen de suivi n°{i + 1}</td><td>{(i % 28) + 1:02d}/03/2025</td>"
        f"<td>Résultat dans les valeurs habituelles</td></tr>"
        for i in range(30)
    )
    points = " ".join(f"{40 + i * 45},{150 - (i * 17) % 100}" for i in range(11))
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 560 200" width="560" height="200">'
        '<path d="M40 20H540M40 70H540M40 120H540" stroke="#d0d0d8" fill="none"/>'
        '<path d="M40 170H540" stroke="#1b1b1f"/>'
        f'<polyline points="{points}" fill="none" stroke="#00557f" stroke-width="2.5"/>'
        '<text x="34" y="24" text-anchor="end">90</text><text x="34" y="174" text-anchor="end">60</text>'
        '<text x="40" y="190">01/2025</text><text x="540" y="190" text-anchor="end">11/2025</text></svg>'
    )
    paragraph = "<p>" + "Texte courant du document, écrit pour remplir une page comme un compte rendu. " * 8 + "</p>"
    return f"""<!doctype html><html lang="fr"><head><meta charset="utf-8"><style>
@page {{ size: A4; margin: 18mm 14mm; font-family: "DejaVu Sans";
  @bottom-right {{ content: "page " counter(page) " / " counter(pages); font-family: "DejaVu Sans"; font-size: 7.5pt; }} }}
html {{ font-family: "DejaVu Sans"; font-size: 8.6pt; line-height: 1.35; }}
h1 {{ font-size: 16pt; }} h2 {{ font-size: 10.5pt; border-bottom: .6pt solid #d0d0d8; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .8mm 1.5mm; border-bottom: .5pt solid #d0d0d8; }}
</style></head><body>
<h1>Document de comparaison</h1><h2>Présentation</h2>{paragraph}{paragraph}
<h2>Tableau de 30 lignes</h2><table><thead><tr><th>N°</th><th>Examen</th><th>Date</th><th>Résultat</th></tr></thead>
<tbody>{rows}</tbody></table><h2>Graphique</h2>{svg}<h2>Suite</h2>{paragraph * 2}<h2>Conclusion</h2>{paragraph}
</body></html>"""


def interleaved(cases: dict, runs: int) -> dict:
    """Median wall and CPU milliseconds per case. The cases run in turn within each round, so a
    load burst from other processes on a shared machine hits them all alike."""
    for fn in cases.values():
        fn()  # warm
    wall = {name: [] for name in cases}
    cpu = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]) * 1000, statistics.median(cpu[name]) * 1000) for name in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="timed runs per row (median)")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (it is dropped and re-created).")
    recreate_database(url)
    media = tempfile.mkdtemp(prefix="bench-profile-pdf-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mssante.settings",
            "DEBUG": "true",
            "VAR_DIR": media,
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "",
        }
    )
    import django

    django.setup()
    import io

    import pypdf
    import weasyprint
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import datetime

    from health_record import pdf
    from health_record.api import profile_pdf
    from health_record.models import Profile
    from health_record.profile import profile_data
    from patients.enrolment import enrol_patient
    from tests.factories import make_ins
    from tests.record.profiles import fill_profile

    patient = enrol_patient(
        ins=make_ins(sex="1", year=58, month=3, seq=42),
        first_names="Paul Henri",
        birth_name="Lambert",
        birth_date=datetime.date(1958, 3, 14),
        sex="M",
    )
    fill_profile(patient)

    def uncached():
        Profile.objects.filter(patient=patient).update(pdf_hash="")
        return pdf.ensure_profile_pdf(patient)

    _name, data, rendered = uncached()
    pages = len(pypdf.PdfReader(io.BytesIO(data)).pages)
    assert rendered and pages == 2, pages
    comparable_html = comparable_document()
    comparable_pages = len(pypdf.PdfReader(io.BytesIO(weasyprint.HTML(string=comparable_html).write_pdf())).pages)
    snapshot = profile_data(patient)

    def cached():
        return profile_pdf(patient)

    def uncached_then_warm():
        uncached()

    cases = {
        "profile PDF, render only": lambda: pdf.render_pdf(snapshot),
        "profile PDF, uncached (task path)": uncached_then_warm,
        "comparable document (30-row table, 1 SVG)": lambda: weasyprint.HTML(string=comparable_html).write_pdf(),
        "empty page": lambda: weasyprint.HTML(string="<html><body></body></html>").write_pdf(),
        # Runs after the uncached case of the same round: the stored PDF is current.
        "cached re-send (api.profile_pdf)": cached,
    }
    pages_of = {name: pages for name in cases}
    pages_of["comparable document (30-row table, 1 SVG)"] = comparable_pages
    pages_of["empty page"] = 1
    results = interleaved(cases, args.n)

    print(f"# Profile PDF benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {machine()}, PostgreSQL, {args.n} interleaved rounds in a warm process (medians)\n")
    print("| case | pages | wall (ms) | CPU (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for name, (wall_ms, cpu_ms) in results.items():
        print(f"| {name} | {pages_of[name]} | {wall_ms:.1f} | {cpu_ms:.1f} |")
    base_wall, base_cpu = results["comparable document (30-row table, 1 SVG)"]
    for name in ("profile PDF, render only", "profile PDF, uncached (task path)"):
        wall_ms, cpu_ms = results[name]
        print(
            f"{name} / comparable document: {wall_ms / base_wall:.2f}× wall, {cpu_ms / base_cpu:.2f}× CPU (target ≤ 1.5×)"
        )
    print(f"cached re-send: {results['cached re-send (api.profile_pdf)'][0]:.1f} ms wall (target ≈ 0)")


if __name__ == "__main__":
    main()
