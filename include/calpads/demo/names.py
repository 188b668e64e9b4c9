"""Name pools for the made-up students (ASCII letters, spaces and hyphens only)."""

from __future__ import annotations

FEMALE = (
    "Sofia Isabella Mia Emma Olivia Camila Emily Ava Abigail Victoria Valentina Natalie Aaliyah Chloe Sophia "
    "Leah Zoe Evelyn Ximena Genesis Elena Amelia Mila Luna Aria Nevaeh Madison Hannah Kimberly Ashley Jasmine "
    "Andrea Daniela Vanessa Nicole Samantha Maya Brianna Alexa Angelina Jocelyn Mariana Gabriela Esmeralda "
    "Priya Anika Mei Hana Yuna Linh Thao Nguyet Fatima Amira Layla Noor Grace Lily Ruby Hazel Stella Naomi "
    "Savannah Keira Imani Aiyana Kalani Leilani Marisol Guadalupe Rosa Carmen Alondra Itzel Yesenia Paola"
).split()
MALE = (
    "Mateo Santiago Sebastian Liam Noah Daniel Alexander Ethan Jacob Michael Benjamin Julian Adrian Diego "
    "Angel Gabriel Isaac Nathan Aiden Elijah David Joshua Christopher Anthony Jayden Leonardo Emiliano Jesus "
    "Jose Luis Carlos Juan Miguel Alejandro Ivan Oscar Eduardo Fernando Ricardo Kevin Brandon Jonathan "
    "Arjun Rohan Vikram Minh Khoa Tuan Hiroshi Kenji Omar Yusuf Ali Hamza Lucas Henry Owen Caleb Wyatt "
    "Ezekiel Josiah Malik Jamal Darius Kai Keanu Marcus Xavier Andres Emilio Joaquin Rafael Cristian Bryan"
).split()
LAST = (
    "Garcia Hernandez Lopez Martinez Gonzalez Rodriguez Perez Sanchez Ramirez Torres Flores Rivera Gomez Diaz "
    "Cruz Morales Reyes Gutierrez Ortiz Ramos Ruiz Chavez Vasquez Castillo Mendoza Alvarez Jimenez Romero "
    "Herrera Medina Aguilar Vargas Castro Guzman Fernandez Munoz Mendez Salazar Soto Delgado Pena Rios "
    "Nguyen Tran Le Pham Huynh Vo Kim Park Lee Chen Wang Li Zhang Liu Wong Patel Singh Shah Khan Kumar Sharma "
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Jackson Martin "
    "Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams Baker "
    "Nelson Carter Mitchell Roberts Campbell Evans Turner Collins Stewart Morris Murphy Cook Rogers Bell "
    "Kahananui Begay Yazzie Tsosie Okafor Mensah Haile Tesfaye Abebe Nakamura Tanaka Sato Yamamoto"
).split() + ["De La Cruz", "Van Der Berg", "Del Rio", "De Leon", "St John"]
# Legal first names for the planted "longer than 30 characters" violation (31-40 characters).
LONG_FIRST = (
    "Maria-Guadalupe-Esperanza-Josefina",
    "Juan-Sebastian-Alejandro-Maximiliano",
    "Anna-Sophia-Gabriela-Valentina-Rose",
    "Christopher-Alexander-Jonathan-Lee",
)
SCHOOL_STEMS = (
    "Oak Grove", "Jefferson", "Cesar Chavez", "Sierra Vista", "Mission", "Rancho", "Sequoia", "Lincoln",
    "Valley View", "Harbor", "Redwood", "Dolores Huerta", "Sunset", "Pacific", "Monterey", "Golden Hills",
    "Madrone", "Willow Creek", "Bayside", "El Camino", "Hillcrest", "Poppy", "Manzanita", "Del Mar",
    "Los Robles", "Twin Oaks", "Palomar", "Shasta", "Yosemite", "Cabrillo", "Sutter", "Muir", "Kennedy",
    "Roosevelt", "Garfield", "Edison", "Franklin", "Washington", "Juniper", "Cypress",
)
SUBDISTRICTS = ("North", "South", "East", "West")
