"""The value patterns on a Brazilian shop (a probe on data shaped like the public Olist set):
product titles full of words the Correios list also names logradouros with (jardim, parque, vila,
colônia...) are not addresses; Brazilian addresses, abbreviated or not, are; a CPF is a national
id. Measured lists, both kept here (docs/guard.md, Value patterns)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lifecycle.guard import patterns

PRODUCT_TITLES = [
    "Colônia Paris Eau de Toilette",
    "Kit Jardim Vertical Com 6 Vasos",
    "Conjunto Jantar Madeira Maciça 6 Cadeiras",
    "Cadeira de Praia Mor Reclinável",
    "Bola Campo Nike Strike",
    "Vila Sésamo Boneco Elmo",
    "Mangueira Jardim Tramontina 15m",
    "Tapete Sala Parque Verde 2x3",
    "Lago Azul Aquário 40L",
    "Estação de Solda Hikari 60W",
    "Galeria de Arte Quadro Decorativo 3 Peças",
    "Ponte H Motor Arduino L298N",
    "Conjunto Panelas Tramontina Paris 5 Peças",
    "Kit Praia Guarda Sol e Cadeira",
    "Jogo de Cama Casal Jardim Secreto 4 Peças",
    "Parque Aquático Infantil Inflável",
    "Colônia Infantil Giovanna Baby 120ml",
    "Campo de Futebol de Botão Estrela",
    "Lagoa Azul DVD Edição Especial",
    "Fazenda Feliz Brinquedo de Madeira",
    "Quadro Decorativo Vale do Silício, 40x60",
    "Chácara Luminária de Jardim Solar",
    "Relógio Salvador Dourado Masculino",
    "Vestido Praia Floral Tamanho M",
    "Sítio do Picapau Amarelo Box 5 DVDs",
    "Caminho de Mesa Renda Branca 1,50m",
    "Feira Infantil Kit Frutinhas de Madeira",
    "Trevo de Quatro Folhas Pingente Prata",
    "Morro do Alemão Livro Capa Dura",
    "Capa de Chuva Moto Marginal Preta",
    "Smartphone Samsung Galaxy A10 32GB",
    "Fone de Ouvido Bluetooth JBL Tune 500",
    "Panela de Pressão Rochedo 4,5 Litros",
    "Perfume Malbec Tradicional 100ml",
    "Cafeteira Elétrica Mondial Bella Arome 30 Xícaras",
    "Tênis Nike Revolution 5 Masculino",
    "Mochila Escolar Sestini Capricho Love",
    "Livro O Pequeno Príncipe Edição de Bolso",
    "Kit 3 Camisetas Básicas Algodão",
    "Ventilador de Mesa Arno 40cm",
    "Cama Box Casal Ortobom 138x188",
    "Luminária de Piso Tripé Madeira",
    "Boneca Baby Alive Hora do Banho",
    "Jogo de Toalhas Santista 5 Peças",
    "Carrinho de Bebê Burigotto Travel System",
    "Aparelho de Jantar Oxford Porcelana 20 Peças",
    "Kit Ferramentas Tramontina 110 Peças",
    "Garrafa Térmica Stanley 1,4 Litros",
    "Edredom Queen Plumasul Parque das Flores",
    "Estação Meteorológica Digital Incoterm",
    "Rodo Mágico Flash Limp com Balde",
    "Jogo Americano Mesa Posta 4 Lugares",
]

ADDRESSES = [
    "Rua Augusta, 1200",
    "entregar na R. Oscar Freire 379",
    "Av. Paulista, 1578 - Bela Vista",
    "Avenida Brasil 500",
    "Travessa do Comércio, 12",
    "Tv. São Francisco 45",
    "Alameda Santos, 2100, apto 51",
    "Al. Lorena 1450",
    "Praça da Sé, 108",
    "Pç. XV de Novembro 20",
    "Estrada do Coco, km 7",
    "Rodovia Anhanguera, 3000",
    "Rod. Raposo Tavares 120",
    "Largo do Arouche 24",
    "Viela das Flores, 8",
    "Beco do Batman, 15",
    "Praia de Botafogo, 300 - Botafogo",
    "Vila Madalena, 45",
    "Jardim das Acácias, nº 120",
    "Conjunto Nacional, 2073",
    "Parque Industrial, s/n",
]


def looks_like(engine, kind: str, value: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT {patterns.matches_sql(kind, 'CAST(:v AS text)')}"), {"v": value}
        ).scalar()


def flagged(engine, kind: str, values: list[str]) -> list[str]:
    with engine.connect() as conn:
        return [
            v
            for v in values
            if conn.execute(
                sa.text(f"SELECT {patterns.matches_sql(kind, 'CAST(:v AS text)')}"), {"v": v}
            ).scalar()
        ]


def test_no_brazilian_product_title_is_taken_for_any_personal_value(engine):
    assert len(PRODUCT_TITLES) >= 50
    assert {kind: flagged(engine, kind, PRODUCT_TITLES) for kind in patterns.KINDS} == {
        kind: [] for kind in patterns.KINDS
    }


def test_every_brazilian_address_is_an_address_alone_and_in_a_sentence(engine):
    assert len(ADDRESSES) >= 20
    assert flagged(engine, "street_address", ADDRESSES) == ADDRESSES
    sentences = [f"cliente pediu entrega em {a} amanhã" for a in ADDRESSES]
    assert flagged(engine, "street_address", sentences) == sentences


@pytest.mark.parametrize("value", ["123.456.789-09", "CPF 529.982.247-25, titular"])
def test_a_cpf_is_a_national_id(engine, value):
    assert looks_like(engine, "national_id", value)


@pytest.mark.parametrize(
    "value",
    ["123.456.789-00", "111.111.111-11", "12345678909", "1.234.567.890-12", "v123.456.789-09b"],
)
def test_a_cpf_with_wrong_check_digits_or_another_shape_is_not(engine, value):
    assert not looks_like(engine, "national_id", value)
