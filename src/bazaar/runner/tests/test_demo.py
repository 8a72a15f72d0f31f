import json
import uuid

from bazaar.runner.demo import admin_login, demo_file
from bazaar.runner.topology import SERVICES


def test_products_are_a_list_every_seeding_service_reads() -> None:
    products = json.loads(demo_file("products.json").read_text())

    assert isinstance(products, list) and len(products) >= 36
    assert len({p["category"] for p in products}) == 6
    assert len({p["id"] for p in products}) == len(products)
    for product in products:
        assert set(product) == {
            "id",
            "name",
            "description",
            "category",
            "price_cents",
            "stock",
            "image_url",
        }
        assert str(uuid.UUID(product["id"])) == product["id"]
        assert type(product["price_cents"]) is int and product["price_cents"] > 0
        assert type(product["stock"]) is int and 10 <= product["stock"] <= 60
        assert product["name"] and product["category"].isidentifier()


def test_the_admin_login_comes_from_users_json() -> None:
    assert admin_login() == ("admin@bazaar.local", "bazaar-admin-2026")
    admins = json.loads(demo_file("users.json").read_text())["admins"]
    assert admins[0]["name"] == "Bazaar Admin"


def test_every_seed_file_named_in_the_topology_exists() -> None:
    seeded = {s.name: s.seed_file for s in SERVICES if s.seed_file}

    assert seeded == {
        "auth": "users.json",
        "inventory": "products.json",
        "catalog": "products.json",
    }
    assert all(demo_file(name).is_file() for name in seeded.values())
