"""Deterministic transaction CSVs (seeded): realistic descriptions, several accounts, two years of dates."""

import random
from datetime import date, timedelta
from pathlib import Path

MERCHANTS = [
    "STARBUCKS #{n}", "SAFEWAY STORE {n}", "SHELL OIL {n}", "AMZN Mktp US*{n}", "PG&E WEB ONLINE",
    "UBER TRIP {n}", "NETFLIX.COM", "TRADER JOE'S #{n}", "CVS PHARMACY {n}", "COSTCO WHSE #{n}",
    "Blue Bottle Cafe", "Tony's Pizza {n}", "SPOTIFY USA", "WHOLE FOODS MKT {n}", "CHEVRON {n}",
    "BEST BUY {n}", "CITY PARKING {n}", "GOLD'S GYM", "CINEMA 21", "COMCAST CABLE", "FARMERS MARKET",
    "LOCAL HARDWARE {n}", "BOOKSHOP, MAIN ST", "TARGET T-{n}", "RENT PAYMENT",
]
ACCOUNTS = ["chequing", "visa", "amex", "savings", "cash"]
START = date(2024, 1, 1)


def write_transactions(path: Path, target_bytes: int, seed: int) -> int:
    """Write one CSV of about ``target_bytes``; return its row count."""
    rng = random.Random(seed)
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        out.write("date,description,amount,account\n")
        written = 0
        lines: list[str] = []
        while written < target_bytes:
            day = START + timedelta(days=rng.randrange(730))
            if rng.random() < 0.03:
                line = f"{day.isoformat()},PAYROLL DEPOSIT ACME CORP,-3500.00,chequing\n"
            else:
                name = rng.choice(MERCHANTS).format(n=rng.randrange(1000))
                if "," in name:
                    name = f'"{name}"'
                line = f"{day.isoformat()},{name},{rng.uniform(1, 400):.2f},{rng.choice(ACCOUNTS)}\n"
            lines.append(line)
            written += len(line)
            rows += 1
            if len(lines) >= 50_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
    return rows


def write_dataset(folder: Path, total_bytes: int, files: int, seed: int = 7) -> int:
    """``files`` CSVs adding up to about ``total_bytes``; return the total row count."""
    per_file = max(total_bytes // files, 64)
    return sum(
        write_transactions(folder / f"tx-{i:05d}.csv", per_file, seed * 100_003 + i) for i in range(files)
    )
