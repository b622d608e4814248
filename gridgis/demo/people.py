"""Generated residents: households, ages, residency, vulnerabilities, names, phones, IDs.

Everything is drawn from one ``numpy.random.Generator`` so a seed gives the same people.
Shares are plausible for the Pearl River Delta, not statistics of any real place.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gridgis.layers.models import RESIDENCIES

THIS_YEAR = 2026
AGE_BANDS = [(0, 13, 0.14), (14, 17, 0.04), (18, 34, 0.25), (35, 59, 0.38), (60, 64, 0.06),
             (65, 79, 0.10), (80, 95, 0.03)]
# Mean household size ~2.6: a new household starts at a resident with this probability.
NEW_HOUSEHOLD_P = 1 / 2.6
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余"
            "于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎"
            "史陶贺毛郝顾龚邵万覃武钱戴严欧莫孔向常汤康易乔赖文")
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍建华红梅志强晓东海燕丹"
         "俊杰嘉怡子轩梓涵浩然欣怡宇航思彤家豪雨桐锦荣永康淑仪伟文嘉欣凯琳国华少芬")
FOREIGN_NAMES = ("João Silva", "Maria Santos", "Ana Costa", "Pedro Almeida", "John Smith",
                 "Nguyen Van An", "Kim Min-jun", "Tanaka Yuki", "Ahmed Khan", "Olga Ivanova")
# Household registration places of migrants (来穗人员): a few real county-level codes.
MIGRANT_REGIONS = ("430521", "450102", "360124", "441581", "510113", "431102", "452501",
                   "421023", "441723", "350583")
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = np.array(list("10X98765432"))


@dataclass(frozen=True)
class People:
    """Column arrays of generated residents, one entry per person."""

    building_index: NDArray[np.int64]
    household: NDArray[np.int64]          # household sequence within the building, from 1
    birth_year: NDArray[np.int64]
    female: NDArray[np.bool_]
    residency: NDArray[np.str_]
    vulnerabilities: list[list[str]]
    names: list[str]
    phones: list[str | None]
    id_numbers: list[str]
    moved_out: NDArray[np.bool_]
    registered_days_ago: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.building_index)


def draw_people(rng: np.random.Generator, residents_per_building: NDArray[np.int64],
                residency_shares: dict[str, float], home_region: str) -> People:
    """Return the residents of every building, grouped into households."""
    building_index = np.repeat(np.arange(len(residents_per_building)), residents_per_building)
    n = len(building_index)
    first_in_building = np.ones(n, dtype=bool)
    first_in_building[1:] = building_index[1:] != building_index[:-1]
    starts = first_in_building | (rng.random(n) < NEW_HOUSEHOLD_P)
    household_global = np.cumsum(starts) - 1
    first_household = household_global[first_in_building]
    household = household_global - np.repeat(first_household, residents_per_building[
        residents_per_building > 0]) + 1

    bands = rng.choice(len(AGE_BANDS), size=n, p=[b[2] for b in AGE_BANDS])
    low = np.array([b[0] for b in AGE_BANDS])[bands]
    high = np.array([b[1] for b in AGE_BANDS])[bands]
    age = rng.integers(low, high + 1)
    female = rng.random(n) < 0.49

    shares = np.array([residency_shares.get(r, 0.0) for r in RESIDENCIES])
    household_residency = rng.choice(len(RESIDENCIES), size=household_global[-1] + 1 if n else 0,
                                     p=shares / shares.sum())
    residency = np.array(RESIDENCIES)[household_residency[household_global]]
    household_size = np.bincount(household_global)[household_global] if n else np.zeros(0, int)

    vulnerable = {
        "child": age < 14,
        "elderly_alone": (age >= 65) & (household_size == 1),
        "disabled": rng.random(n) < np.where(age >= 60, 0.05, 0.015),
        "bedridden": rng.random(n) < np.where(age >= 75, 0.06, 0.001),
        "pregnant": female & (age >= 20) & (age <= 40) & (rng.random(n) < 0.05),
        "chronic_ill": (age >= 50) & (rng.random(n) < 0.12),
    }
    vulnerabilities: list[list[str]] = [[] for _ in range(n)]
    for kind, mask in vulnerable.items():
        for i in np.flatnonzero(mask):
            vulnerabilities[i].append(kind)

    birth_year = THIS_YEAR - age
    return People(
        building_index=building_index,
        household=household,
        birth_year=birth_year,
        female=female,
        residency=residency,
        vulnerabilities=vulnerabilities,
        names=draw_names(rng, residency),
        phones=draw_phones(rng, residency, age),
        id_numbers=draw_id_numbers(rng, residency, birth_year, female, home_region),
        moved_out=rng.random(n) < 0.015,
        registered_days_ago=rng.integers(30, 15 * 365, size=n),
    )


def draw_names(rng: np.random.Generator, residency: NDArray[np.str_]) -> list[str]:
    """Return a Chinese name per person (a foreign one for foreign residents)."""
    n = len(residency)
    surname = rng.integers(0, len(SURNAMES), size=n)
    given1 = rng.integers(0, len(GIVEN), size=n)
    given2 = rng.integers(0, len(GIVEN), size=n)
    two_chars = rng.random(n) < 0.7
    foreign = rng.integers(0, len(FOREIGN_NAMES), size=n)
    return [
        FOREIGN_NAMES[f] if r == "foreign"
        else SURNAMES[s] + GIVEN[g1] + (GIVEN[g2] if two else "")
        for r, s, g1, g2, two, f in zip(residency, surname, given1, given2, two_chars, foreign,
                                        strict=True)
    ]


def draw_phones(rng: np.random.Generator, residency: NDArray[np.str_],
                age: NDArray[np.int64]) -> list[str | None]:
    """Return a mobile number per person (Macau +853, Hong Kong +852); none for children."""
    n = len(residency)
    mainland = rng.choice(np.array(["13", "15", "17", "18", "19"]), size=n)
    digits = rng.integers(0, 10**9, size=n)
    local = rng.integers(0, 10**7, size=n)
    phones: list[str | None] = []
    for r, prefix, d, loc, a in zip(residency, mainland, digits, local, age, strict=True):
        if a < 12:
            phones.append(None)
        elif r == "macau":
            phones.append(f"+853 6{loc:07d}")
        elif r == "hongkong":
            phones.append(f"+852 9{loc:07d}")
        else:
            phones.append(f"{prefix}{d:09d}")
    return phones


def draw_id_numbers(rng: np.random.Generator, residency: NDArray[np.str_],
                    birth_year: NDArray[np.int64], female: NDArray[np.bool_],
                    home_region: str) -> list[str]:
    """Return an 18-character ID per person with a valid GB 11643 check character.

    Registered residents carry the home region, migrants another county, Macau and Hong Kong
    residents the 820000 / 810000 residence-permit prefixes; foreigners a passport number.
    """
    n = len(residency)
    region = np.where(residency == "registered", home_region,
                      rng.choice(np.array(MIGRANT_REGIONS), size=n))
    region = np.where(residency == "macau", "820000", region)
    region = np.where(residency == "hongkong", "810000", region)
    month = rng.integers(1, 13, size=n)
    day = rng.integers(1, 29, size=n)
    sequence = rng.integers(0, 500, size=n) * 2 + np.where(female, 0, 1)
    body = np.char.add(np.char.add(region.astype(str), np.char.mod("%04d", birth_year)),
                       np.char.add(np.char.mod("%02d", month), np.char.mod("%02d", day)))
    body = np.char.add(body, np.char.mod("%03d", sequence))
    digits = np.frombuffer("".join(body.tolist()).encode(), dtype=np.uint8).reshape(n, 17) - 48
    check = ID_CHECK[(digits.astype(np.int64) @ ID_WEIGHTS) % 11]
    passports = np.char.mod("E%08d", rng.integers(0, 10**8, size=n))
    return [p if r == "foreign" else b + c
            for r, b, c, p in zip(residency, body, check, passports, strict=True)]
