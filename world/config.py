"""The scenario's typed configuration: every constant of a run, with its unit.

Each part's config lives beside what it configures (streets, radio, compute,
prompts); this module assembles them into `ScenarioConfig`.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from world.compute import GpuProfile, ImageGenConfig, PhoneProfile, QualityProfile
from world.llm_config import LlmConfig
from world.prompts import PromptsConfig
from world.radio import RadioConfig
from world.streets import StreetsConfig

# The base station's policies: the learners (trained weights, `policies.ddpg`/`gddpg`) and the heuristics
# (`policies.heuristics`), by the names base_station.policy, --policy and the sweeps accept.
PolicyName = Literal["gddpg", "ddpg", "greedy", "optimum", "fixed", "random"]
POLICIES: tuple[str, ...] = get_args(PolicyName)
LEARNER_NAMES = ("gddpg", "ddpg")

Point = tuple[float, float]

# Every section is strict (a number is a number: true is not 1, 4.5 is not a count) and refuses NaN and
# infinity. Pairs and lists say strict=False: YAML gives lists, which then become tuples; their items stay strict.
STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
MAX_SEED = 2**32 - 1      # what every generator (numpy, torch) takes
MAX_SPEED_MPS = 100.0      # a fast train; a walker crosses speed * slot_s / block_m intersections per slot
MAX_PATH_CHARS = 4096


def printable(text: str, what: str) -> str:
    """`text` unchanged, or ValueError when it holds control characters (line breaks included)."""
    if not text.isprintable():
        raise ValueError(f"{what} {text[:40]!r} contains control characters")
    return text


def file_path(path: str | None) -> str | None:
    """`path` unchanged (None too), or ValueError when it is too long or holds control characters."""
    if path is not None and len(path) > MAX_PATH_CHARS:
        raise ValueError(f"a path of {len(path)} characters; at most {MAX_PATH_CHARS} are allowed")
    if path is not None and not path.strip():
        raise ValueError("an empty path; name a file, or leave the field out (or null) for none")
    return path if path is None else printable(path, "path")


class PersonaConfig(BaseModel):
    """One persona: a name, a short background, Big Five traits in [0, 1]."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=60, description="What the persona is called.")
    background: str = Field("", max_length=300, description="One or two sentences about the person.")
    openness: float = Field(ge=0, le=1, description="Big Five openness, 0-1.")
    conscientiousness: float = Field(ge=0, le=1, description="Big Five conscientiousness, 0-1.")
    extraversion: float = Field(ge=0, le=1, description="Big Five extraversion, 0-1.")
    agreeableness: float = Field(ge=0, le=1, description="Big Five agreeableness, 0-1.")
    neuroticism: float = Field(ge=0, le=1, description="Big Five neuroticism, 0-1.")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        return printable(name, "persona name")

    @field_validator("background")
    @classmethod
    def _printable_background(cls, background: str) -> str:
        # the background goes into the language model's instructions; a folded YAML line may end in a newline
        printable(background.replace("\n", " "), "background")
        return background


class TraitMeans(BaseModel):
    """Mean of each trait in a sampled population, 0-1 (exclusive)."""

    model_config = STRICT

    openness: float = Field(0.5, gt=0, lt=1, description="Mean openness, 0-1.")
    conscientiousness: float = Field(0.5, gt=0, lt=1, description="Mean conscientiousness, 0-1.")
    extraversion: float = Field(0.5, gt=0, lt=1, description="Mean extraversion, 0-1.")
    agreeableness: float = Field(0.5, gt=0, lt=1, description="Mean agreeableness, 0-1.")
    neuroticism: float = Field(0.5, gt=0, lt=1, description="Mean neuroticism, 0-1.")


class PopulationConfig(BaseModel):
    """Who the users are: an explicit list of personas, or traits sampled with the run's seed."""

    model_config = STRICT

    personas: tuple[PersonaConfig, ...] = Field(
        (), max_length=10_000, strict=False,
        description="Explicit personas; users take them in turn (with fewer personas than users, each is "
                    "numbered: Ana 1, Ana 2, ...). Empty: sample traits instead.")
    trait_means: TraitMeans = Field(default_factory=TraitMeans, description="Sampling: mean of each trait.")
    concentration: float = Field(
        2.0, gt=0, description="Sampling: Beta(mean * c, (1 - mean) * c) per trait; 2 with mean 0.5 is uniform.")

    @model_validator(mode="after")
    def _one_way(self) -> PopulationConfig:
        sampling = [k for k in ("trait_means", "concentration")
                    if getattr(self, k) != type(self).model_fields[k].get_default(call_default_factory=True)]
        if self.personas and sampling:
            raise ValueError(f"personas lists the users, so {' and '.join(sampling)} would be "
                             f"ignored: remove {'them' if len(sampling) > 1 else 'it'}, or remove personas to sample")
        return self


class UsersConfig(BaseModel):
    """The population of mobile users."""

    model_config = STRICT

    count: int = Field(30, ge=1, le=100_000, description="Number of mobile users, count.")
    speed_mps: tuple[float, float] = Field(
        (0.8, 1.6), strict=False, description="Range of walking speeds, m/s; each user draws one uniformly.")
    request_rate_per_s: float = Field(
        0.02, ge=0, le=10, description="Mean image requests per user per second (Poisson process), 1/s.")
    population: PopulationConfig = Field(default_factory=PopulationConfig, description="Personas of the users.")

    @field_validator("speed_mps")
    @classmethod
    def _speed_range(cls, speed: tuple[float, float]) -> tuple[float, float]:
        low, high = speed
        if low <= 0 or high < low or high > MAX_SPEED_MPS:
            raise ValueError(f"must be [low, high] with 0 < low <= high <= {MAX_SPEED_MPS:g}")
        return speed


class BaseStationConfig(BaseModel):
    """The base station and its decision bounds."""

    model_config = STRICT

    position_m: Point = Field((200.0, 200.0), strict=False, description="Coordinates (x, y), m.")
    policy: PolicyName = Field(
        "fixed", description="Allocation policy: 'gddpg' (diffusion-model actor) or 'ddpg' (MLP actor), trained "
                             "with `python -m scenarios.train`; 'greedy' (more steps and power to better channels, "
                             "within the budget); 'optimum' (per-request grid search on the learned feedback model); "
                             "'fixed' (max steps on the GPU, max power); 'random'.")
    checkpoint: str | None = Field(
        None, description="Learner weights for gddpg/ddpg (a checkpoint written by `python -m scenarios.train`); a "
                          "relative path is looked up here, then beside the shipped scenarios. None: untrained.")
    min_steps: int = Field(5, ge=1, le=1000, description="Fewest denoising steps per request T_min, count.")
    max_steps: int = Field(50, ge=1, le=1000, description="Most denoising steps per request T_max, count.")
    energy_budget_j_per_slot: float = Field(
        500.0, gt=0, description="Energy the service may spend per slot (GPU + radio), J.")
    energy_penalty: float = Field(
        1.0, ge=0, description="Reward lost per budget's worth of energy over the budget: reward = total QoE - "
                               "energy_penalty * over_budget_j / energy_budget_j_per_slot - "
                               "device_energy_weight * device_energy_j, QoE units.")
    device_energy_weight: float = Field(
        0.005, ge=0, description="Reward lost per J of a phone's battery spent on its own denoising steps (the "
                                 "user's energy, outside the service's budget), QoE/J.")
    observe_traits: bool = Field(
        True, description="The policy sees each user's Big Five traits; false: every user looks average (0.5).")

    @field_validator("checkpoint")
    @classmethod
    def _file_path(cls, path: str | None) -> str | None:
        return file_path(path)

    def budget_penalty(self, over_budget_j: float) -> float:
        """Reward lost for energy over the slot budget, QoE: energy_penalty * over_budget_j / budget."""
        return self.energy_penalty * over_budget_j / self.energy_budget_j_per_slot

    def reward(self, qoe: float, over_budget_j: float, device_energy_j: float) -> float:
        """The objective: QoE less the over-budget penalty and the phones' battery term (README, the objective)."""
        return qoe - self.budget_penalty(over_budget_j) - self.device_energy_weight * device_energy_j

    @model_validator(mode="after")
    def _steps_range(self) -> BaseStationConfig:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must not exceed max_steps ({self.max_steps})")
        return self


class GpuServerConfig(GpuProfile):
    """One edge GPU server: where it is and its cost profile."""

    name: str = Field(min_length=1, max_length=60, description="Server label.")
    position_m: Point = Field(strict=False, description="Coordinates (x, y), m.")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        return printable(name, "server name")


class FeedbackConfig(BaseModel):
    """How users answer: the language model behind the personas and how it is served."""

    model_config = STRICT

    mode: Literal["live", "learned", "silent"] = Field(
        "live", description="'live': the LLM answers every delivery; 'learned': a regressor fitted on a share of "
                            "LLM answers predicts the rest; 'silent': users say nothing.")
    llm: LlmConfig = Field(default_factory=LlmConfig, description="The language model.")
    instances: int = Field(1, ge=1, le=64, description="Model instances answering concurrently, count.")
    serve: Literal["local", "ray"] = Field(
        "local", description="Where the model instances run: 'local' in this process; 'ray' one Ray actor each, "
                             "on the cluster at RAY_ADDRESS or a local Ray (needs `pip install -e .[ray]`).")
    think_s: tuple[float, float] = Field(
        (2.0, 8.0), strict=False,
        description="Range of the time a user takes to answer after the image arrives, s (uniform).")
    cache: str | None = Field(
        ".cache/aigcsim/feedback.sqlite", description="Response cache file (SQLite); null for no cache.")
    learned_live_share: float = Field(
        0.1, ge=0, le=1, description="Learned mode: share of deliveries still answered by the LLM.")
    learned_min_pairs: int = Field(30, ge=5, description="Learned mode: LLM answers before the first fit, count.")
    learned_refresh_slots: int = Field(50, ge=1, description="Learned mode: slots between refits, count.")
    learned_start: str | None = Field(
        None, description="Learned mode: a saved fit to predict with from the first delivery (JSON written by "
                          "`python -m scenarios.fit_feedback`); a relative path is looked up here, then beside the "
                          "shipped scenarios. With learned_live_share 0 the model is frozen and no LLM is started.")

    @field_validator("think_s")
    @classmethod
    def _think_range(cls, think: tuple[float, float]) -> tuple[float, float]:
        low, high = think
        if low < 0 or high < low:
            raise ValueError("must be [low, high] with 0 <= low <= high")
        return think

    @field_validator("cache", "learned_start")
    @classmethod
    def _file_path(cls, path: str | None) -> str | None:
        return file_path(path)

    @property
    def asks_model(self) -> bool:
        """Whether a run starts the language model: live, or learned unless frozen on its start fit."""
        return self.mode == "live" or (
            self.mode == "learned" and not (self.learned_start and self.learned_live_share == 0))


class ScenarioConfig(BaseModel):
    """A whole scenario."""

    model_config = STRICT

    name: str = Field("city_block", min_length=1, max_length=60,
                      description="Scenario name, used in run folder names: letters, digits, '_' and '-'.")
    # torch seeds must fit 64 bits; 2^32 - 1 is what every generator takes
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Seed of every random draw of the run, 0 to 4294967295.")
    slots: int = Field(300, ge=1, le=1_000_000, description="Slots in a run unless --steps says otherwise, count.")
    slot_s: float = Field(1.0, gt=0, le=3600, description="Length of one slot of the simulated clock, s.")
    streets: StreetsConfig = Field(default_factory=StreetsConfig, description="Street grid and mobility.")
    users: UsersConfig = Field(default_factory=UsersConfig, description="Mobile users.")
    base_station: BaseStationConfig = Field(default_factory=BaseStationConfig, description="Base station.")
    radio: RadioConfig = Field(default_factory=RadioConfig, description="Downlink channel.")
    gpu_servers: tuple[GpuServerConfig, ...] = Field(
        min_length=1, max_length=1000, strict=False, description="Edge GPU servers, at least one.")
    phone: PhoneProfile = Field(default_factory=PhoneProfile, description="Phones' denoising cost.")
    quality: QualityProfile = Field(
        default_factory=QualityProfile,
        description="Fallback image quality after a number of steps, for compute engines that do not judge images.")
    imagegen: ImageGenConfig = Field(
        default_factory=ImageGenConfig, description="Cooperative denoising on the GPU servers, real or profiled.")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig, description="Persona feedback.")
    prompts: PromptsConfig = Field(description="Prompt catalog.")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not NAME.fullmatch(name):
            raise ValueError("use letters, digits, '_' and '-', starting with a letter or digit (it names run folders)")
        return name

    @model_validator(mode="after")
    def _inside_block(self) -> ScenarioConfig:
        width = self.streets.columns * self.streets.block_m
        height = self.streets.rows * self.streets.block_m
        places = [("base_station.position_m", self.base_station.position_m)]
        places += [(f"gpu_servers.{s.name}.position_m", s.position_m) for s in self.gpu_servers]
        for where, (x, y) in places:
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"{where} = [{x}, {y}] lies outside the block [0, {width}] x [0, {height}] m")
        names = [s.name for s in self.gpu_servers]
        if len(set(names)) != len(names):
            raise ValueError(f"gpu_servers need unique names, got {names}")
        return self

    @model_validator(mode="after")
    def _budget_covers_one_step(self) -> ScenarioConfig:
        # A slot in which a GPU runs even one step of a batch spends at least e_step(1) = step_energy_j
        # (batches only cost more); a budget below that is overrun by any served request.
        cheapest = min(self.gpu_servers, key=lambda s: s.step_energy_j)
        budget = self.base_station.energy_budget_j_per_slot
        if budget < cheapest.step_energy_j:
            raise ValueError(
                f"base_station.energy_budget_j_per_slot: got {budget:g} J; one denoising step of one image on the "
                f"cheapest GPU server ('{cheapest.name}': step_energy_j) costs {cheapest.step_energy_j:g} J, so "
                f"every slot that serves a request is over budget; give at least {cheapest.step_energy_j:g} J "
                f"per slot, or a cheaper server")
        return self
